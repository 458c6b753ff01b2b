"""Search's words and snippets: case folding, word starts, segments cut from the text."""

from __future__ import annotations

import pytest

from conversation.search import NothingToSearch, matches, query_words, snippet


def test_query_words_are_case_folded_and_deduplicated() -> None:
    assert query_words("Straße straße  WARM!") == ["strasse", "warm"]


@pytest.mark.parametrize("query", ["", "  ", "!!!", "a b c d e f g h i"])
def test_a_query_needs_one_to_eight_words(query: str) -> None:
    with pytest.raises(NothingToSearch):
        query_words(query)


def test_every_query_word_must_begin_a_word_of_the_text() -> None:
    assert matches("Keep the starter WARMER", ["warm", "start"])
    assert not matches("Keep the starter warm", ["warm", "tart"])
    assert matches("Ünïcode Straße", ["straße".casefold(), "ünï"])


def test_a_snippet_marks_every_match_and_keeps_the_text() -> None:
    text = "Warm water, then a warm place: warmth <b>helps</b>."
    segments = snippet(text, ["warm"])
    assert "".join(s.text for s in segments) == text
    assert [s.text for s in segments if s.hit] == ["Warm", "warm", "warmth"]


def test_a_long_text_is_cut_around_the_first_match_at_word_boundaries() -> None:
    text = "alpha " * 40 + "needle in the middle " + "omega " * 40
    segments = snippet(text, ["needle"])
    assert segments[0].text == "…" and segments[-1].text == "…"
    inner = "".join(s.text for s in segments[1:-1])
    assert inner in text and inner.startswith("alpha") and "needle" in inner
    assert len(inner) <= 200
    assert [s.text for s in segments if s.hit] == ["needle"]
