"""Model providers behind one interface (`assistant.providers.base`); `assistant.registry`
builds one per configured provider."""
