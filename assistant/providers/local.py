"""The embedded model: a GGUF run in-process by llama.cpp (`llama-cpp-python`).

The model is loaded once, off the event loop. One generation runs at a time, in a worker
thread that hands its tokens to the event loop (`call_soon_threadsafe`); requests beyond
that wait in a bounded queue, and past its size get 503 with Retry-After at once. The
worker checks a cancellation flag before every token, so a caller that disconnects stops
generation within a token.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from assistant.chat_template import ChatTemplate, TemplateError
from assistant.config import SMOLLM2_FILE, Settings
from assistant.errors import AssistantError, internal, invalid_request, overloaded
from assistant.providers.base import (
    Finish,
    GenerationParams,
    Provider,
    StreamItem,
    TokenStream,
    message_dicts,
    token_budget,
)
from assistant.providers.llama_prompt import PromptTokenizer
from assistant.stops import StopFilter
from common.protocol import ChatMessage, FinishReason, Usage

log = logging.getLogger(__name__)

# SmolLM2's model card recommends these; the request's own values win.
DEFAULT_TEMPERATURE = 0.2
DEFAULT_TOP_P = 0.9
# ChatML, the most common template, for a GGUF that carries none.
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def model_name(path: Path) -> str:
    return path.name.removesuffix(".gguf")


class LocalProvider(Provider):
    name = "local"

    def __init__(self, settings: Settings) -> None:
        super().__init__(model_name(settings.local_model_path or Path(SMOLLM2_FILE)))
        self.settings = settings
        self.llm: Any = None
        self.template: ChatTemplate | None = None
        self.tokenizer: PromptTokenizer | None = None
        self._slot = asyncio.Lock()
        self._waiting = 0
        # One thread: llama.cpp's context is not safe to use from two threads at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self.counters = {"completed": 0, "cancelled": 0, "failed": 0, "tokens_after_cancel": 0}

    async def start(self) -> None:
        path = self.settings.model_path()
        if not path.is_file():
            raise FileNotFoundError(f"no GGUF model at {path} (LOCAL_MODEL_PATH)")
        size_mb = path.stat().st_size / 1e6
        log.info("local model: loading %s (%.0f MB) ...", path, size_mb)
        began = time.monotonic()
        loop = asyncio.get_running_loop()
        self.llm = await loop.run_in_executor(self._executor, self._load, path)
        log.info(
            "local model: weights loaded in %.1fs (context %d tokens, %d threads)",
            time.monotonic() - began,
            self.llm.n_ctx(),
            self.llm.n_threads,
        )
        self.template = self._chat_template()
        markers = self.template.markers
        self.tokenizer = await loop.run_in_executor(
            self._executor, PromptTokenizer, self.llm, markers
        )
        await super().start()

    def _load(self, path: Path) -> Any:
        from llama_cpp import Llama

        return Llama(
            model_path=str(path),
            n_ctx=self.settings.local_n_ctx,
            n_threads=self.settings.local_n_threads or None,
            verbose=False,
        )

    def _chat_template(self) -> ChatTemplate:
        llm = self.llm
        source = llm.metadata.get("tokenizer.chat_template")
        if not source:
            log.warning("local model: the GGUF has no chat template; using ChatML")
        eos, bos = llm.token_eos(), llm.token_bos()
        eos_text = llm._model.token_get_text(eos) if eos != -1 else ""
        bos_text = llm._model.token_get_text(bos) if bos != -1 else ""
        log.info("local model: chat template from the GGUF metadata (eos %r)", eos_text)
        return ChatTemplate(source or CHATML, bos_token=bos_text, eos_token=eos_text)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.llm is not None:
            self.llm.close()

    def stats(self) -> dict[str, int | bool]:
        return {"busy": self._slot.locked(), "queued": self._waiting, **self.counters}

    async def open(self, messages: list[ChatMessage], params: GenerationParams) -> TokenStream:
        if self._slot.locked() and self._waiting >= self.settings.local_queue_size:
            raise overloaded(self.settings.local_queue_size, self.settings.assistant_retry_after)
        self._waiting += 1
        try:
            await self._slot.acquire()
        finally:
            self._waiting -= 1
        try:
            return LocalStream(self, message_dicts(messages), params)
        except BaseException:
            self._slot.release()
            raise

    def release(self) -> None:
        self._slot.release()


class LocalStream:
    """One generation: the worker thread produces, the event loop consumes."""

    def __init__(
        self, provider: LocalProvider, messages: list[dict[str, str]], params: GenerationParams
    ) -> None:
        self.provider = provider
        self.queue: asyncio.Queue[StreamItem | AssistantError] = asyncio.Queue()
        self.cancel = threading.Event()
        self.generated = 0
        self.generated_at_cancel = 0
        self.ended = False
        # Filled by the worker, emptied by the loop; `_wake_pending` is True while a wake-up
        # of the loop is scheduled, so tokens produced meanwhile ride along with it.
        self._handoff: list[StreamItem | AssistantError] = []
        self._handoff_lock = threading.Lock()
        self._wake_pending = False
        self._loop = loop = asyncio.get_running_loop()
        work = loop.run_in_executor(provider._executor, self._generate, messages, params)
        work.add_done_callback(lambda _: provider.release())

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self

    async def __anext__(self) -> StreamItem:
        if self.ended:
            raise StopAsyncIteration
        item = await self.queue.get()
        if isinstance(item, AssistantError):
            self.ended = True
            raise item
        if isinstance(item, Finish):
            self.ended = True
        return item

    async def aclose(self) -> None:
        if not self.ended and not self.cancel.is_set():
            self.generated_at_cancel = self.generated
            self.cancel.set()
        self.ended = True

    def _deliver(self) -> None:
        """On the loop: move what the worker handed over to the queue, texts merged.

        Each wake-up of the loop costs CPU that two cores' worth of llama.cpp threads are
        waiting for; when the loop is slower than the model, one wake-up now carries every
        token made since the last, as one batch.
        """
        with self._handoff_lock:
            items, self._handoff = self._handoff, []
            self._wake_pending = False
        texts: list[str] = []
        for item in items:
            if isinstance(item, list):
                texts.extend(item)
                continue
            if texts:
                self.queue.put_nowait(texts)
                texts = []
            self.queue.put_nowait(item)
        if texts:
            self.queue.put_nowait(texts)

    # --- in the worker thread --------------------------------------------------------------

    def _put(self, item: StreamItem | AssistantError) -> None:
        with self._handoff_lock:
            self._handoff.append(item)
            if self._wake_pending:
                return
            self._wake_pending = True
        self._loop.call_soon_threadsafe(self._deliver)

    def _generate(self, messages: list[dict[str, str]], params: GenerationParams) -> None:
        provider = self.provider
        try:
            reason = self._run(messages, params)
        except AssistantError as exc:
            provider.counters["failed"] += 1
            self._put(exc)
        except Exception as exc:
            log.exception("local generation failed")
            provider.counters["failed"] += 1
            self._put(internal("The local model failed.", f"{type(exc).__name__}: {exc}"))
        else:
            if reason == "cancelled":
                provider.counters["cancelled"] += 1
                overrun = self.generated - self.generated_at_cancel
                provider.counters["tokens_after_cancel"] = overrun
                log.info("local generation cancelled after %d tokens", self.generated)
            else:
                provider.counters["completed"] += 1

    def _run(self, messages: list[dict[str, str]], params: GenerationParams) -> FinishReason:
        from llama_cpp import llama_vocab_is_eog

        provider = self.provider
        llm = provider.llm
        template, tokenizer = provider.template, provider.tokenizer
        assert llm is not None and template is not None and tokenizer is not None
        try:
            pieces = template.pieces(messages)
        except TemplateError as exc:
            message = f"The local model's chat template refused the messages: {exc}"
            raise invalid_request(message, "messages") from exc
        tokens = tokenizer.tokenize(pieces)
        n_ctx = llm.n_ctx()
        if len(tokens) >= n_ctx:
            raise invalid_request(
                f"The conversation is {len(tokens)} tokens; the local model's context "
                f"(LOCAL_N_CTX) holds {n_ctx}.",
                "messages",
            )
        budget = token_budget(params.max_tokens, provider.settings.local_max_tokens)
        max_tokens = min(budget, n_ctx - len(tokens))
        stops = StopFilter([*params.stop, *template.stop])
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        vocab = llm._model.vocab
        reason: FinishReason = "length"
        generator = llm.generate(
            tokens,
            temp=DEFAULT_TEMPERATURE if params.temperature is None else params.temperature,
            top_p=DEFAULT_TOP_P if params.top_p is None else params.top_p,
        )
        try:
            for token in generator:
                if self.cancel.is_set():
                    return "cancelled"
                if llama_vocab_is_eog(vocab, token):
                    reason = "stop"
                    break
                self.generated += 1
                text, stopped = stops.feed(decoder.decode(llm.detokenize([token])))
                if text:
                    self._put([text])
                if stopped:
                    reason = "stop"
                    break
                if self.generated >= max_tokens:
                    break
        finally:
            generator.close()
        rest = stops.flush() + decoder.decode(b"", final=True)
        if rest:
            self._put([rest])
        usage = Usage(
            prompt_tokens=len(tokens),
            completion_tokens=self.generated,
            total_tokens=len(tokens) + self.generated,
        )
        self._put(Finish(reason, usage))
        return reason
