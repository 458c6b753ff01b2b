"""Assistant: one OpenAI-compatible API in front of the configured model provider."""
