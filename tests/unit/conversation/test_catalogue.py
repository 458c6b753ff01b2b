"""Conversation's copy of assistant's catalogue: parsing, defaults, checks, refresh."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conversation.catalogue import Catalogue, CatalogueUnavailable, UnknownModel, parse_models

FULL = {
    "object": "list",
    "data": [
        {
            "id": "smollm2",
            "object": "model",
            "created": 0,
            "owned_by": "chatstack",
            "provider": "local",
            "display_name": "SmolLM2 135M",
            "context_length": 2048,
            "ready": False,
            "default": False,
        },
        {"id": "gpt", "provider": "openai", "display_name": "GPT", "ready": True, "default": True},
    ],
}


def test_assistants_cards_become_the_catalogue() -> None:
    local, gpt = parse_models(FULL)
    assert (local.id, local.display_name, local.provider) == ("smollm2", "SmolLM2 135M", "local")
    assert local.context_length == 2048 and local.ready is False and local.default is False
    assert gpt.default is True and gpt.context_length is None


def test_an_openai_style_list_is_a_catalogue_with_defaults() -> None:
    (only,) = parse_models({"data": [{"id": "fake-model", "owned_by": "openai"}, "junk", {}]})
    assert only.display_name == "fake-model" and only.provider == "openai"
    assert only.ready is True and only.default is True  # the first listed, when none is


def test_a_body_without_a_list_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_models({"detail": "nope"})


def test_check_lists_the_valid_ids_and_a_failed_refresh_keeps_the_last_list() -> None:
    answers: list[Any] = [FULL, OSError("down")]

    async def fetch() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def scenario() -> None:
        catalogue = Catalogue(fetch, refresh_every=60)
        assert await catalogue.check("gpt") == "gpt"
        with pytest.raises(UnknownModel) as refused:
            await catalogue.check("nope")
        assert refused.value.valid == ["smollm2", "gpt"]
        assert [m.id for m in (await catalogue.refresh()) or []] == ["smollm2", "gpt"]
        assert await catalogue.default_id() == "gpt"
        assert await catalogue.title_model("", "gpt") == "smollm2"  # the local model
        assert await catalogue.title_model("gpt", "x") == "gpt"
        assert await catalogue.title_model("unlisted", "gpt") == "gpt"

    asyncio.run(scenario())


def test_no_list_ever_read_is_unavailable_and_no_default() -> None:
    async def fetch() -> Any:
        raise OSError("down")

    async def scenario() -> None:
        catalogue = Catalogue(fetch, refresh_every=60)
        with pytest.raises(CatalogueUnavailable):
            await catalogue.check("gpt")
        assert await catalogue.default_id() is None
        assert await catalogue.title_model("", "chat-model") == "chat-model"

    asyncio.run(scenario())
