"""Code shared by the assistant and conversation services: the wire models between them."""
