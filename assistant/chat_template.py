"""Render a Hugging Face chat template (Jinja) into a prompt, as `transformers` does.

Used for models that take a raw prompt: the local GGUF (its template is in the file's
metadata) and Hugging Face's classic text-generation task (the template comes from the
model's `tokenizer_config.json`, or a built-in one for models without a template).
"""

from __future__ import annotations

import json
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


class ChatTemplate:
    def __init__(
        self,
        source: str,
        bos_token: str = "",
        eos_token: str = "",
        stop: tuple[str, ...] = (),
    ) -> None:
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        # Strings that end the answer when the model writes them as text.
        self.stop = stop
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
        )
        env.filters["tojson"] = _tojson
        self._compiled = env.from_string(source)

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt, ending where the assistant's answer begins.

        Many templates (Mistral's, Llama-2's) refuse a system message; then the system
        prompt goes in front of the first user message, which is what those models expect.
        """
        try:
            return self._render(messages)
        except TemplateError:
            folded = fold_system(messages)
            if folded is messages:
                raise
            return self._render(folded)

    def _render(self, messages: list[dict[str, str]]) -> str:
        try:
            return self._compiled.render(
                messages=messages,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                add_generation_prompt=True,
                raise_exception=_raise,
            )
        except jinja2.TemplateError as exc:
            raise TemplateError(str(exc)) from exc


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
