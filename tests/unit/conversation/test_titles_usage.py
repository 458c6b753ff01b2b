"""Titles as a model writes them, cleaned; and what a reply spent, reported or estimated."""

from __future__ import annotations

from common.protocol import Usage
from conversation.titles import MAX_TITLE_CHARS, clean_title, title_prompt
from conversation.usage import _models, spent


def test_a_title_is_the_first_line_without_quotes_label_or_end_punctuation() -> None:
    assert clean_title('\n  "Trip to Lisbon."\nMore text') == "Trip to Lisbon"
    assert clean_title("Title: **Budget planning**") == "Budget planning"
    assert clean_title("\u201cCurly quotes\u201d!") == "Curly quotes"
    assert clean_title("   \n  ") == ""


def test_a_long_title_is_cut_at_a_word_within_the_limit() -> None:
    words = "word " * 30
    title = clean_title(words)
    assert len(title) <= MAX_TITLE_CHARS and title.endswith("word") and " " in title
    unbroken = clean_title("x" * 200)
    assert unbroken == "x" * MAX_TITLE_CHARS


def test_the_title_prompt_holds_an_excerpt_of_the_exchange() -> None:
    system, user = title_prompt("q" * 5000, "the answer")
    assert system.role == "system" and user.role == "user"
    assert "the answer" in user.content and len(user.content) < 2100


def test_reported_usage_is_taken_as_is() -> None:
    cost = spent(Usage(prompt_tokens=7, completion_tokens=3, total_tokens=10), "abc", 400, True)
    assert (cost.prompt_tokens, cost.completion_tokens, cost.estimated) == (7, 3, False)


def test_without_a_count_tokens_are_estimated_and_an_unreached_model_spent_no_prompt() -> None:
    cost = spent(None, "héllo wo", 41, reached_model=True)
    assert (cost.prompt_tokens, cost.completion_tokens, cost.estimated) == (11, 3, True)
    refused = spent(None, "", 41, reached_model=False)
    assert (refused.prompt_tokens, refused.completion_tokens) == (0, 0)


def test_a_days_hash_reads_as_usage_per_model() -> None:
    raw = {"r:a/b:c": "2", "p:a/b:c": "10", "c:a/b:c": "5", "e:a/b:c": "3", "r:z": "1", "x:z": "9"}
    first, second = _models(raw)
    assert first.model == "a/b:c" and (first.replies, first.total_tokens) == (2, 15)
    assert first.estimated_tokens == 3
    assert second.model == "z" and second.replies == 1 and second.total_tokens == 0
