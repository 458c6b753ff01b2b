"""The embedded model: a GGUF run in-process by llama.cpp (`llama-cpp-python`).

The model is loaded once, off the event loop. Up to LOCAL_PARALLEL chats are generated at
once, decoded together by one worker thread (see `local_batch`); requests beyond that wait
in a bounded queue, fair between users, learning their place in it (`Queued` items before
the first token), and past its size get 503 with Retry-After at once. The worker checks
each chat's cancellation flag before every step, so a caller that disconnects frees its
slot within a token.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from assistant.chat_template import ChatTemplate, TemplateError
from assistant.config import SMOLLM2_FILE, Settings
from assistant.errors import AssistantError, invalid_request, overloaded
from assistant.providers.base import (
    Finish,
    GenerationParams,
    Provider,
    Queued,
    StreamItem,
    TokenStream,
    message_dicts,
    token_budget,
)
from assistant.providers.llama_prompt import PromptTokenizer
from assistant.providers.local_batch import QueueFull, Sampling, Scheduler
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


def load_model(path: Path) -> Any:
    """The weights and vocabulary, without a context (the scheduler makes its own)."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel
    from llama_cpp._logger import set_verbose

    set_verbose(False)  # llama.cpp's load and context logs go to stderr otherwise
    llama_cpp.llama_backend_init()
    return LlamaModel(
        path_model=str(path), params=llama_cpp.llama_model_default_params(), verbose=False
    )


class LocalProvider(Provider):
    name = "local"

    def __init__(self, settings: Settings) -> None:
        super().__init__(model_name(settings.local_model_path or Path(SMOLLM2_FILE)))
        self.settings = settings
        self.llm: Any = None
        self.template: ChatTemplate | None = None
        self.tokenizer: PromptTokenizer | None = None
        self.scheduler: Scheduler | None = None
        self.counters = {"completed": 0, "cancelled": 0, "failed": 0, "tokens_after_cancel": 0}

    async def start(self) -> None:
        path = self.settings.model_path()
        if not path.is_file():
            raise FileNotFoundError(f"no GGUF model at {path} (LOCAL_MODEL_PATH)")
        size_mb = path.stat().st_size / 1e6
        log.info("local model: loading %s (%.0f MB) ...", path, size_mb)
        began = time.monotonic()
        self.llm = await asyncio.to_thread(load_model, path)
        self.scheduler = await asyncio.to_thread(self._scheduler)
        log.info(
            "local model: weights loaded in %.1fs (%d chats at once, %d tokens each)",
            time.monotonic() - began,
            len(self.scheduler.slots),
            self.scheduler.n_ctx,
        )
        self.template = self._chat_template()
        self.tokenizer = await asyncio.to_thread(PromptTokenizer, self.llm, self.template.markers)
        await self._warm_up()
        await super().start()

    async def _warm_up(self) -> None:
        """A two-token reply to the operator's system prompt, before the model is ready.

        The first decodes of a fresh context cost more than later ones (the weights paged
        in from the file on first use, llama.cpp's buffers and threads set up); they are
        paid here, with one prompt read and one token decoded, so a ready model answers its
        first chat as fast as any other. The prompt's cells stay in a slot, and every chat
        starts with the same system prompt: the other slots copy them from there.
        """
        scheduler = self.scheduler
        assert scheduler is not None
        began = time.monotonic()
        system = self.settings.assistant_system_prompt
        messages = [{"role": "system", "content": system}] if system else []
        try:
            prompt = await asyncio.to_thread(self._prompt, [*messages, WARM_UP_MESSAGE])
        except AssistantError as exc:  # the same refusal will answer every chat, not this
            log.warning("local model: no warm-up: %s", exc.message)
            return
        # A system prompt longer than a chat's context: its start is still worth reading.
        job = WarmUp(prompt[: scheduler.n_ctx // 2])
        scheduler.submit(job)
        try:
            error = await job.done
        except asyncio.CancelledError:  # stopped while loading
            job.cancelled.set()
            scheduler.wake()
            raise
        if error is not None:
            raise error
        log.info("local model: warmed up in %.1fs", time.monotonic() - began)

    def unbatched_llama(self) -> Any:
        """llama-cpp-python's one-chat-at-a-time `Llama` with these settings: what the service
        ran before it batched chats, kept as the reference for tests and the bench."""
        from llama_cpp import Llama

        settings = self.settings
        return Llama(
            model_path=str(settings.model_path()),
            n_ctx=settings.local_n_ctx,
            n_threads=settings.local_n_threads or None,
            verbose=False,
        )

    def _scheduler(self) -> Scheduler:
        settings = self.settings
        cores = len(os.sched_getaffinity(0)) or 1
        # Unless the operator fixed it: half the cores (llama-cpp-python's default for one
        # token) or all of them, whichever the scheduler measures faster (local_threads.py).
        threads = [max(cores // 2, 1), cores]
        if settings.local_n_threads:
            threads = [settings.local_n_threads]
        return Scheduler(
            self.llm,
            n_ctx=settings.local_n_ctx,
            slots=settings.local_parallel,
            queue_size=settings.local_queue_size,
            threads=threads,
        )

    def _chat_template(self) -> ChatTemplate:
        model = self.llm
        source = model.metadata().get("tokenizer.chat_template")
        if not source:
            log.warning("local model: the GGUF has no chat template; using ChatML")
        eos, bos = model.token_eos(), model.token_bos()
        eos_text = model.token_get_text(eos) if eos != -1 else ""
        bos_text = model.token_get_text(bos) if bos != -1 else ""
        log.info("local model: chat template from the GGUF metadata (eos %r)", eos_text)
        return ChatTemplate(source or CHATML, bos_token=bos_text, eos_token=eos_text)

    async def close(self) -> None:
        if self.scheduler is not None:
            await asyncio.to_thread(self.scheduler.close)
            self.scheduler = None
        if self.llm is not None:
            self.llm.close()
            self.llm = None

    def stats(self) -> dict[str, int | bool]:
        load = self.scheduler.stats() if self.scheduler is not None else {}
        return {"busy": bool(load.get("active")), **load, **self.counters}

    async def open(self, messages: list[ChatMessage], params: GenerationParams) -> TokenStream:
        scheduler = self.scheduler
        assert scheduler is not None
        prompt = await asyncio.to_thread(self._prompt, message_dicts(messages))
        n_ctx = scheduler.n_ctx
        if len(prompt) >= n_ctx:
            raise invalid_request(
                f"The conversation is {len(prompt)} tokens; the local model's context "
                f"(LOCAL_N_CTX) holds {n_ctx}.",
                "messages",
            )
        budget = token_budget(params.max_tokens, self.settings.local_max_tokens)
        stream = LocalStream(self, prompt, params, min(budget, n_ctx - len(prompt)))
        try:
            ahead = scheduler.submit(stream)
        except QueueFull:
            raise overloaded(
                self.settings.local_queue_size, self.settings.assistant_retry_after
            ) from None
        if ahead is not None:
            stream.queued(ahead)
        return stream

    def _prompt(self, messages: list[dict[str, str]]) -> list[int]:
        template, tokenizer = self.template, self.tokenizer
        assert template is not None and tokenizer is not None
        try:
            pieces = template.pieces(messages)
        except TemplateError as exc:
            message = f"The local model's chat template refused the messages: {exc}"
            raise invalid_request(message, "messages") from exc
        return tokenizer.tokenize(pieces)


WARM_UP_MESSAGE = {"role": "user", "content": "Hello"}


class WarmUp:
    """The warm-up's job: greedy, two tokens (the first comes from reading the prompt, the
    second from a one-token step: both kinds of decode run once)."""

    tokens = 2

    def __init__(self, prompt: list[int]) -> None:
        self.prompt = prompt
        self.sampling = Sampling(temperature=0, top_p=1)
        self.user: str | None = None
        self.cancelled = threading.Event()
        self.generated = 0
        self._loop = asyncio.get_running_loop()
        # Set on the loop when the worker is done with it: the error, or None.
        self.done: asyncio.Future[AssistantError | None] = self._loop.create_future()

    def queued(self, ahead: int) -> None:
        pass  # the scheduler is new: there is nothing to wait for

    def token(self, token: int) -> FinishReason | None:
        self.generated += 1
        return "length" if self.generated >= self.tokens else None

    def end(self, reason: FinishReason | None) -> None:
        self._loop.call_soon_threadsafe(self._settle, None)

    def fail(self, error: AssistantError) -> None:
        self._loop.call_soon_threadsafe(self._settle, error)

    def _settle(self, error: AssistantError | None) -> None:
        if not self.done.done():
            self.done.set_result(error)


class LocalStream:
    """One chat: the scheduler's worker produces (a `local_batch.Job`), the loop consumes."""

    def __init__(
        self,
        provider: LocalProvider,
        prompt: list[int],
        params: GenerationParams,
        max_tokens: int,
    ) -> None:
        self.provider = provider
        self.prompt = prompt
        self.sampling = Sampling(
            temperature=DEFAULT_TEMPERATURE if params.temperature is None else params.temperature,
            top_p=DEFAULT_TOP_P if params.top_p is None else params.top_p,
        )
        self.max_tokens = max_tokens
        self.user = params.user
        assert provider.template is not None
        self.stops = StopFilter([*params.stop, *provider.template.stop])
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.queue: asyncio.Queue[StreamItem | AssistantError] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.generated = 0
        self.generated_at_cancel = 0
        self.ended = False
        self.place: int | None = None  # the place in the queue last told, while waiting
        # Filled by the worker, emptied by the loop; `_wake_pending` is True while a wake-up
        # of the loop is scheduled, so tokens produced meanwhile ride along with it.
        self._handoff: list[StreamItem | AssistantError] = []
        self._handoff_lock = threading.Lock()
        self._wake_pending = False
        self._loop = asyncio.get_running_loop()

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self

    async def __anext__(self) -> StreamItem:
        if self.ended:
            raise StopAsyncIteration
        if self.place is None:
            item = await self.queue.get()
        else:
            # Waiting: the place again when it has not changed for a while, so the stream
            # carries bytes and no read timeout between here and the person cuts the wait.
            try:
                async with asyncio.timeout(self.provider.settings.local_queue_notice_seconds):
                    item = await self.queue.get()
            except TimeoutError:
                return Queued(self.place)
        self.place = item.ahead if isinstance(item, Queued) else None
        if isinstance(item, AssistantError):
            self.ended = True
            raise item
        if isinstance(item, Finish):
            self.ended = True
        return item

    async def aclose(self) -> None:
        if not self.ended and not self.cancelled.is_set():
            self.generated_at_cancel = self.generated
            self.cancelled.set()
            if self.provider.scheduler is not None:
                self.provider.scheduler.wake()
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

    # --- in the scheduler's worker thread (and `queued` once on the loop, from `open`) -------

    def _put(self, item: StreamItem | AssistantError) -> None:
        with self._handoff_lock:
            self._handoff.append(item)
            if self._wake_pending:
                return
            self._wake_pending = True
        self._loop.call_soon_threadsafe(self._deliver)

    def queued(self, ahead: int) -> None:
        self._put(Queued(ahead))

    def token(self, token: int) -> FinishReason | None:
        self.generated += 1
        piece = self.provider.llm.detokenize([token])
        text, stopped = self.stops.feed(self.decoder.decode(piece))
        if text:
            self._put([text])
        if stopped:
            return "stop"
        if self.generated >= self.max_tokens:
            return "length"
        return None

    def end(self, reason: FinishReason | None) -> None:
        counters = self.provider.counters
        if reason is None:
            counters["cancelled"] += 1
            counters["tokens_after_cancel"] = self.generated - self.generated_at_cancel
            log.info("local generation cancelled after %d tokens", self.generated)
            return
        counters["completed"] += 1
        rest = self.stops.flush() + self.decoder.decode(b"", final=True)
        if rest:
            self._put([rest])
        usage = Usage(
            prompt_tokens=len(self.prompt),
            completion_tokens=self.generated,
            total_tokens=len(self.prompt) + self.generated,
        )
        self._put(Finish(reason, usage))

    def fail(self, error: AssistantError) -> None:
        self.provider.counters["failed"] += 1
        self._put(error)
