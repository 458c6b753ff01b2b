"""Stop strings, chat templates and Retry-After parsing."""

from __future__ import annotations

import pytest

from assistant.chat_template import ChatTemplate, TemplateError, builtin_template
from assistant.errors import from_upstream_status, parse_retry_after, upstream_message
from assistant.stops import StopFilter


def run(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    f = StopFilter(stops)
    out = []
    for piece in pieces:
        text, stopped = f.feed(piece)
        out.append(text)
        if stopped:
            return "".join(out), True
    return "".join(out) + f.flush(), False


def test_stop_string_split_across_tokens_is_never_shown() -> None:
    assert run(["\nUser:"], ["Hi", "\n", "Us", "er", ": more"]) == ("Hi", True)


def test_false_alarm_is_released() -> None:
    assert run(["\nUser:"], ["Hi", "\n", "Us", "ual"]) == ("Hi\nUsual", False)


def test_held_text_is_flushed_at_the_end() -> None:
    assert run(["END"], ["a", "EN"]) == ("aEN", False)


def test_no_stops_passes_through() -> None:
    assert run([], ["a", "b"]) == ("ab", False)


def test_template_folds_the_system_prompt_when_refused() -> None:
    template = builtin_template("mistralai/Mistral-7B-Instruct-v0.2")
    prompt = template.render(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "2+2?"},
        ]
    )
    assert prompt == "<s>[INST] Be brief.\n\nhi [/INST]Hello</s>[INST] 2+2? [/INST]"


def test_template_errors_surface_when_folding_cannot_help() -> None:
    template = ChatTemplate("{{ raise_exception('no') }}")
    with pytest.raises(TemplateError, match="no"):
        template.render([{"role": "user", "content": "hi"}])


def test_base_models_get_a_transcript_with_a_stop() -> None:
    template = builtin_template("EleutherAI/gpt-j-6b")
    assert template.render([{"role": "user", "content": "hi"}]) == "User: hi\nAssistant:"
    assert template.stop == ("\nUser:",)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "12"}, 12),
        ({"retry-after": "0.2"}, 1),
        ({"retry-after-ms": "2500", "retry-after": "9"}, 3),
        ({"retry-after": "not a date"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 1),
    ],
)
def test_retry_after(headers: dict[str, str], expected: int | None) -> None:
    assert parse_retry_after(headers) == expected


@pytest.mark.parametrize(
    ("upstream", "status", "retryable"),
    [
        (401, 502, False),
        (403, 502, False),
        (429, 429, False),
        (400, 400, False),
        (404, 502, False),
        (500, 502, True),
        (503, 503, True),
        (504, 504, True),
    ],
)
def test_upstream_status_mapping(upstream: int, status: int, retryable: bool) -> None:
    error = from_upstream_status("openai", upstream, "detail", None, 7)
    assert (error.status, error.retryable) == (status, retryable)
    assert "openai" in error.message


def test_a_rate_limit_that_names_its_wait_is_retried_after_it() -> None:
    error = from_upstream_status("openai", 429, "slow down", 4, 7)
    assert (error.retryable, error.retry_after) == (True, 4)
    unnamed = from_upstream_status("openai", 429, "slow down", None, 7)
    assert (unnamed.retryable, unnamed.retry_after) == (False, 7)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"message": "bad key", "type": "x"}}, "bad key"),
        ({"error": "model is loading"}, "model is loading"),
        ({"message": "plain"}, "plain"),
        ("<html>gateway</html>", "<html>gateway</html>"),
        ({"error": {"type": "no message"}}, "fallback"),
        (None, "fallback"),
        ("x" * 1000, "x" * 300),
    ],
)
def test_upstream_message_reads_every_error_body_shape(body: object, expected: str) -> None:
    assert upstream_message(body, "fallback") == expected


@pytest.mark.parametrize("upstream", [400, 401, 404, 413, 429, 500, 503, 504])
def test_what_the_upstream_said_is_kept_for_the_log_only(upstream: int) -> None:
    said = "<html>upstream http://gpu-7.corp.internal:8000 failed</html>"
    error = from_upstream_status("openai", upstream, said, None, 7)
    assert "corp.internal" not in error.json().decode()
    assert error.detail is not None and "corp.internal" in error.detail
