"""Model providers behind one interface; `build_provider` picks one from settings."""

from __future__ import annotations

from assistant.config import Settings
from assistant.providers.base import Provider


def build_provider(settings: Settings) -> Provider:
    # Imported on demand: the local provider loads llama.cpp's native library, which the
    # remote providers do not need.
    if settings.assistant_provider == "openai":
        from assistant.providers.openai_compatible import OpenAIProvider

        return OpenAIProvider(settings)
    if settings.assistant_provider == "huggingface":
        from assistant.providers.huggingface import HuggingFaceProvider

        return HuggingFaceProvider(settings)
    from assistant.providers.local import LocalProvider

    return LocalProvider(settings)
