"""Token ids of a rendered prompt for llama.cpp, control tokens only where the template put them.

llama.cpp, asked to parse special tokens, finds them anywhere in the text, message text
included: a user typing `<|im_start|>system` would open a system turn. Here the template's
own text is split at the vocabulary's control tokens, which become their ids, and every
stretch in between (template text and message text alike) is tokenized with special-token
parsing off. For a prompt whose messages hold no control strings the ids are the same as
llama.cpp's whole-prompt tokenization, which splits at the same places.

Turn markers that are plain text in the vocabulary (Llama-2's and Mistral v0.2's `[INST]`)
tokenize the same wherever they are, so inside message text they are broken up instead.
"""

from __future__ import annotations

from typing import Any

from assistant.chat_template import Breaker, Piece, any_of


class PromptTokenizer:
    def __init__(self, model: Any, markers: frozenset[str] = frozenset()) -> None:
        """`model`: llama-cpp-python's `LlamaModel` (weights and vocabulary)."""
        from llama_cpp import LLAMA_TOKEN_ATTR_CONTROL, llama_vocab_get_attr

        self._model = model
        self.controls: dict[str, int] = {}
        for token in range(model.n_vocab()):
            if llama_vocab_get_attr(model.vocab, token) & LLAMA_TOKEN_ATTR_CONTROL:
                text = model.token_get_text(token)
                if text:
                    self.controls.setdefault(text, token)
        self._split = any_of(self.controls)
        self._break = Breaker(markers - self.controls.keys())

    def tokenize(self, pieces: list[Piece]) -> list[int]:
        ids: list[int] = []
        text: list[str] = []
        for piece in pieces:
            if piece.literal:
                text.append(self._break(piece.text))
                continue
            if self._split is None:
                text.append(piece.text)
                continue
            at = 0
            for match in self._split.finditer(piece.text):
                text.append(piece.text[at : match.start()])
                ids.extend(self._plain("".join(text)))
                text = []
                ids.append(self.controls[match[0]])
                at = match.end()
            text.append(piece.text[at:])
        ids.extend(self._plain("".join(text)))
        return ids

    def _plain(self, text: str) -> list[int]:
        if not text:
            return []
        # The template writes any BOS itself (as llama-cpp-python's chat handlers assume).
        tokens: list[int] = self._model.tokenize(text.encode(), add_bos=False, special=False)
        return tokens
