"""Render a Hugging Face chat template (Jinja) into a prompt, as `transformers` does.

Used for models that take a raw prompt: the local GGUF (its template is in the file's
metadata) and Hugging Face's classic text-generation task (the template comes from the
model's `tokenizer_config.json`, or a built-in one for models without a template).

The prompt comes out in pieces that say which text the template wrote and which is a
message's: only the template's own text may become control tokens (`<|im_start|>`,
`</s>`), so a user who types one cannot forge a turn or a role. Each message's text is
wrapped in markers holding a random nonce before rendering; the caller cannot guess the
nonce, so cannot fake a marker, and the markers show where the template put each message.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

# [INST] format of Mistral/Llama-2 instruct models, for when a model's template is unknown.
INST_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)

# A plain transcript for base models without a chat format (GPT-J and friends).
TRANSCRIPT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n' }}"
    "{% else %}{{ 'Assistant: ' + message['content'] + '\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


class TemplateError(ValueError):
    """The template refused the conversation (e.g. roles that do not alternate)."""


def _raise(message: str) -> NoReturn:
    raise TemplateError(message)


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


# Zero width space: put inside a control string in message text, it still reads the same
# but no tokenizer matches it as the control token any more.
BREAK = "\u200b"
# Turn markers a template writes as plain text ([INST], <start_of_turn>, <|user|>): not
# always special tokens, but a user typing them forges a turn all the same.
LITERAL_MARKER = re.compile(r"<\|?/?[A-Za-z_][\w.-]{0,40}\|?>|\[/?[A-Z][A-Z_]{1,20}\]")


def any_of(strings: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching any of the strings, the longest where several start at one place
    (as tokenizers match special tokens); None for no strings."""
    longest_first = sorted(set(strings), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, longest_first))) if longest_first else None


class Breaker:
    """Breaks up the given control strings inside text, so it stays text."""

    def __init__(self, strings: Iterable[str]) -> None:
        self._find = any_of(s for s in strings if len(s) > 1)

    def __call__(self, text: str) -> str:
        if self._find is None:
            return text
        return self._find.sub(lambda m: m[0][0] + BREAK + m[0][1:], text)


# Starts each marker around message text; no template writes it, so one left in the
# template's text means the template cut or moved a message's text.
MARK = "\x02"


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    # A message's text: to be read as plain characters, never as control tokens.
    literal: bool


class ChatTemplate:
    def __init__(
        self,
        source: str,
        bos_token: str = "",
        eos_token: str = "",
        stop: tuple[str, ...] = (),
        special_tokens: tuple[str, ...] = (),
    ) -> None:
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        # Strings that end the answer when the model writes them as text.
        self.stop = stop
        # The turn markers the template itself writes, special tokens or not.
        self.markers = frozenset({bos_token, eos_token, *LITERAL_MARKER.findall(source)})
        # What `raw_prompt` breaks up inside message text: those and the tokenizer's
        # special tokens.
        self.breaker = Breaker({*special_tokens, *self.markers})
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
        )
        env.filters["tojson"] = _tojson
        self._compiled = env.from_string(source)

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt as one string (message text as is: for a tokenizer told which is which)."""
        return "".join(piece.text for piece in self.pieces(messages))

    def raw_prompt(self, messages: list[dict[str, str]]) -> str:
        """The prompt for a server that tokenizes it whole, special tokens and all (TGI):
        every control string inside message text is broken up, so it stays text."""
        return "".join(
            self.breaker(piece.text) if piece.literal else piece.text
            for piece in self.pieces(messages)
        )

    def pieces(self, messages: list[dict[str, str]]) -> list[Piece]:
        """The prompt, ending where the assistant's answer begins; when the last message is
        the assistant's, ending right after its text, so the model continues that message
        (no end of turn, no new header: vLLM's `continue_final_message`).

        Many templates allow only one system message, first, or none at all (Mistral's,
        Llama-2's): then the system messages are merged into one, or else go in front of the
        first user message, which is what those models expect.
        """
        continuing = bool(messages) and messages[-1]["role"] == "assistant"
        merged = merge_system(messages)
        attempts = [messages]
        if merged is not messages:
            attempts.append(merged)
        folded = fold_system(merged)
        if folded is not merged:
            attempts.append(folded)
        for attempt in attempts[:-1]:
            try:
                return self._pieces(attempt, continuing)
            except TemplateError:
                pass
        return self._pieces(attempts[-1], continuing)

    def _pieces(self, messages: list[dict[str, str]], continuing: bool) -> list[Piece]:
        nonce = secrets.token_hex(8)
        marked = [
            {**m, "content": f"{MARK}{nonce}:{i}\x03{m['content']}{MARK}{nonce}\x03"}
            for i, m in enumerate(messages)
        ]
        text = self._render(marked, add_generation_prompt=not continuing)
        spans = re.compile(f"{MARK}{nonce}:(\\d+)\x03(.*?){MARK}{nonce}\x03", re.DOTALL)
        pieces: list[Piece] = []
        at = 0
        last = len(messages) - 1
        for match in spans.finditer(text):
            pieces.append(Piece(text[at : match.start()], literal=False))
            pieces.append(Piece(match[2], literal=True))
            at = match.end()
            if continuing and int(match[1]) == last:
                break
        else:
            if continuing:
                raise TemplateError("the chat template leaves out the final assistant message")
        if not continuing:
            pieces.append(Piece(text[at:], literal=False))
        if any(MARK in piece.text for piece in pieces if not piece.literal):
            # The template cut or reordered a message's text: no telling what is whose.
            raise TemplateError("the chat template altered a message's text")
        return [piece for piece in pieces if piece.text]

    def _render(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        try:
            return self._compiled.render(
                messages=messages,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                add_generation_prompt=add_generation_prompt,
                raise_exception=_raise,
            )
        except TemplateError:
            raise
        except Exception as exc:
            # A template is code from the model's files; whatever breaks in it, the request
            # that made it break is refused, with no template internals in the answer.
            raise TemplateError("the chat template could not render these messages") from exc


def merge_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """One system message, first, holding every system message's text in order."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    if len(system) < 2 and (not system or messages[0]["role"] == "system"):
        return messages
    rest = [m for m in messages if m["role"] != "system"]
    return [{"role": "system", "content": "\n\n".join(system)}, *rest]


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    if not system or not rest or rest[0]["role"] != "user":
        return messages
    first = {"role": "user", "content": "\n\n".join([*system, rest[0]["content"]])}
    return [first, *rest[1:]]


def builtin_template(model: str) -> ChatTemplate:
    """A fitting template for a model whose own template is unavailable."""
    name = model.lower()
    if any(family in name for family in ("mistral", "mixtral", "llama-2")):
        return ChatTemplate(INST_TEMPLATE, bos_token="<s>", eos_token="</s>")
    return ChatTemplate(TRANSCRIPT_TEMPLATE, stop=("\nUser:",))
