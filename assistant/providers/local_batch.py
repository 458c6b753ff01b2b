"""Several chats decoded together: one llama.cpp context, one sequence id per chat.

One worker thread owns the context (llama.cpp's context is not safe to use from two threads
at once). Each step it admits waiting jobs into free slots, then makes one `llama_decode`
call holding the next token of every generating sequence plus a share of the prompts being
read, and samples each sequence's token from its own row of logits. A chat therefore costs
the others one more row per step instead of its whole reply, and a long prompt is read in
pieces of at most `n_batch` tokens per step so it never stalls the replies already running.

The context is `n_ctx * slots` cells split into one stream per sequence (`kv_unified`
off), so every chat has its own `n_ctx` tokens whatever the others hold. A slot keeps its
cells after its job ends: a new job is put into the free slot whose tokens share the longest
prefix with its prompt (a conversation's next turn) and only the rest is read again. When
another slot, busy or not, holds a longer prefix of the prompt (the chat template and the
operator's system prompt every prompt starts with), its cells are copied instead of read.

Beyond the slots, jobs wait in a bounded queue, fair between users (the request's `user`,
which conversation sets to the client's address identity): a job goes ahead of every job of
a user who already holds more of the model than its own user (`fair_index`), so one user's
many requests delay another's by at most a reply, not by all of them. Each waiting job
learns how many are ahead of it whenever that changes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# llama.cpp's threads (OpenMP's) meet at a barrier after every operation of a step. By
# default they spin there for long; on cores other processes share, a thread spinning for one
# that was descheduled made 4-chat steps ~5x slower than one chat alone (bench scenario 13).
# Asleep at once (OMP_WAIT_POLICY=PASSIVE), each barrier costs a wake-up, and two threads were
# slower than one (one token 25 ms against 14). A short spin before sleeping (GOMP_SPINCOUNT,
# iterations of a pause) keeps both: two threads take one token in 8.6 ms, and a descheduled
# partner costs microseconds of spinning. The scheduler then picks the thread count by
# measuring (local_threads.py). Read once, when llama.cpp's library loads, so set before the
# import; an operator's own values win.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

import llama_cpp
import numpy

from assistant.errors import AssistantError, internal
from assistant.providers.local_threads import ThreadChooser
from common.protocol import FinishReason

log = logging.getLogger(__name__)

# llama-cpp-python's own defaults for what the API does not expose (top_k, min_p): kept so
# sampling is the same as the one-chat-at-a-time `Llama.generate` it replaces.
TOP_K = 40
MIN_P = 0.05
TYPICAL_P = 1.0


@dataclass(frozen=True, slots=True)
class Sampling:
    temperature: float
    top_p: float
    seed: int = llama_cpp.LLAMA_DEFAULT_SEED  # the library's "a random seed"


class Job(Protocol):
    """One request as the worker sees it; its methods are called on the worker thread
    (`queued` also by `submit`'s caller, for the place a job is given on arrival)."""

    prompt: list[int]
    sampling: Sampling
    cancelled: threading.Event
    user: str | None  # whose request, for the queue's fairness (None: one shared user)

    def queued(self, ahead: int) -> None:
        """Waiting for a slot, `ahead` jobs before it in the queue (called on change)."""

    def token(self, token: int) -> FinishReason | None:
        """A sampled token (never end-of-generation); a reason when the job is complete."""

    def end(self, reason: FinishReason | None) -> None:
        """Generation is over: finished for `reason`, or cancelled (None)."""

    def fail(self, error: AssistantError) -> None: ...


class QueueFull(Exception):
    pass


def fair_index(
    waiting: Iterable[str | None], running: Counter[str | None], user: str | None
) -> int:
    """Where a new job of `user` goes among the `waiting` jobs' users (queue order).

    A job's round is how many jobs its user has ahead of it: running, and waiting before
    it. The new job goes after every waiting job of a round at or below its own and before
    the first of a higher round: a user with nothing running is served before the second
    request of a user with one running, and arrival order holds within a round.
    """
    mine = running[user]
    seen: Counter[str | None] = Counter()
    order = list(waiting)
    for other in order:
        if other == user:
            mine += 1
    for index, other in enumerate(order):
        if running[other] + seen[other] > mine:
            return index
        seen[other] += 1
    return len(order)


# Copying cells between streams copies the whole stream (llama.cpp's `seq_cp` across streams
# takes no range): ~45 MB for SmolLM2 at LOCAL_N_CTX=2048, a few milliseconds, about what
# reading two or three prompt tokens costs on a CPU. Below this gain reading is as cheap.
COPY_MIN_TOKENS = 8


@dataclass(slots=True)
class Slot:
    seq: int
    # Tokens whose cells this sequence holds, in order (kept after a job ends, for reuse).
    cached: list[int] = field(default_factory=list)
    job: Job | None = None
    sampler: Any = None
    read: int = 0  # prompt tokens already in the cells
    last: int = -1  # the sampled token the next step feeds back
    row: int = -1  # this step's logits row, or -1 when it has none


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def sampler_chain(sampling: Sampling) -> Any:
    """`Llama.generate`'s sampling: greedy at temperature 0 (None: no chain, the scheduler
    takes the highest logit itself), else top-k, typical, top-p, min-p, temperature, then a
    draw. Its penalty sampler is left out: at the values it is given there (repeat 1,
    frequency 0, presence 0) it changes no logit."""
    t = sampling.temperature
    if t == 0:
        return None
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    if t < 0:
        links = [llama_cpp.llama_sampler_init_dist(sampling.seed)]
    else:
        links = [
            llama_cpp.llama_sampler_init_top_k(TOP_K),
            llama_cpp.llama_sampler_init_typical(TYPICAL_P, 1),
            llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1),
            llama_cpp.llama_sampler_init_min_p(MIN_P, 1),
            llama_cpp.llama_sampler_init_temp(t),
            llama_cpp.llama_sampler_init_dist(sampling.seed),
        ]
    for link in links:
        llama_cpp.llama_sampler_chain_add(chain, link)  # the chain owns and frees its links
    return chain


class Scheduler:
    def __init__(
        self,
        model: Any,
        *,
        n_ctx: int,
        slots: int,
        queue_size: int,
        threads: Sequence[int],
        n_batch: int = 512,
    ) -> None:
        from llama_cpp._internals import LlamaContext

        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * slots
        params.n_seq_max = slots
        params.kv_unified = False
        # As `Llama` sets it: the same arithmetic, so the same greedy replies, as before.
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.n_batch = params.n_ubatch = n_batch
        self._threads = ThreadChooser(threads)
        self._threads_now = params.n_threads = params.n_threads_batch = max(threads)
        self._context: Any = LlamaContext(model=model, params=params, verbose=False)
        self.ctx = self._context.ctx
        self.n_ctx = llama_cpp.llama_n_ctx_seq(self.ctx)
        self._memory = llama_cpp.llama_get_memory(self.ctx)
        self._vocab = model.vocab
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(model.vocab)
        self.n_batch = n_batch
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.queue_size = queue_size
        self.slots = [Slot(seq) for seq in range(slots)]
        self._waiting: deque[Job] = deque()
        self._running: Counter[str | None] = Counter()  # jobs in slots, by user
        self._positions: dict[int, int] = {}  # id(job) -> the place it was last told
        self._changed = threading.Condition()
        self._stopping = False
        self._active = 0
        # Prompt tokens read by the model, and those whose cells were already there or copied
        # (written by the worker only).
        self._read = 0
        self._reused = 0
        self._thread = threading.Thread(target=self._run, name="llama", daemon=True)
        self._thread.start()

    # --- any thread ----------------------------------------------------------------------

    def submit(self, job: Job) -> int | None:
        """Queue `job`; its place in the queue when it must wait for a slot, else None.

        Raises `QueueFull` when `queue_size` jobs are already waiting for a slot.
        """
        with self._changed:
            free = len(self.slots) - self._active
            if len(self._waiting) - free >= self.queue_size:
                raise QueueFull
            index = fair_index((j.user for j in self._waiting), self._running, job.user)
            self._waiting.insert(index, job)
            ahead = index - free
            if ahead >= 0:
                self._positions[id(job)] = ahead
            self._changed.notify()
        return ahead if ahead >= 0 else None

    def wake(self) -> None:
        """A job was cancelled: let the worker free its slot or queue place now."""
        with self._changed:
            self._changed.notify()

    def stats(self) -> dict[str, int]:
        with self._changed:
            free = len(self.slots) - self._active
            return {
                "slots": len(self.slots),
                "active": self._active,
                "queued": max(0, len(self._waiting) - free),
                "prompt_tokens_read": self._read,
                "prompt_tokens_reused": self._reused,
                # What the last step ran on: the thread count found fastest (local_threads.py).
                "threads": self._threads_now,
            }

    def close(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._thread.join()
        llama_cpp.llama_batch_free(self._batch)
        for slot in self.slots:
            if slot.sampler is not None:
                llama_cpp.llama_sampler_free(slot.sampler)
        self._context.close()

    # --- the worker thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and not self._waiting and not self._active:
                    self._changed.wait()
                if self._stopping:
                    return
                dropped = self._drop_cancelled()
                admitted = self._admit()
                told = self._tell_positions()
            for job in dropped:
                job.end(None)
            for job, ahead in told:
                job.queued(ahead)
            for slot in admitted:
                self._start(slot)
            try:
                self._step()
            except Exception as exc:  # a broken context fails every running job, not the worker
                log.exception("local model: a batched decode failed")
                error = internal("The local model failed.", f"{type(exc).__name__}: {exc}")
                for slot in self.slots:
                    if slot.job is not None:
                        self._release(slot, error)

    def _drop_cancelled(self) -> list[Job]:
        dropped = [job for job in self._waiting if job.cancelled.is_set()]
        for job in dropped:
            self._waiting.remove(job)
            self._positions.pop(id(job), None)
        return dropped

    def _admit(self) -> list[Slot]:
        admitted = []
        while self._waiting and self._active < len(self.slots):
            job = self._waiting.popleft()
            self._positions.pop(id(job), None)
            free = [s for s in self.slots if s.job is None]
            slot = max(free, key=lambda s: common_prefix(s.cached, job.prompt))
            slot.job = job
            self._active += 1
            self._running[job.user] += 1
            admitted.append(slot)
        return admitted

    def _tell_positions(self) -> list[tuple[Job, int]]:
        told = []
        for ahead, job in enumerate(self._waiting):
            if self._positions.get(id(job)) != ahead:
                self._positions[id(job)] = ahead
                told.append((job, ahead))
        return told

    def _start(self, slot: Slot) -> None:
        job = slot.job
        assert job is not None
        # The last prompt token is always read again: its logits give the first token.
        most = len(job.prompt) - 1
        keep = min(common_prefix(slot.cached, job.prompt), most)
        donor, shared = self._donor(slot, job.prompt)
        if donor is not None and min(shared, most) >= keep + COPY_MIN_TOKENS:
            # Carried out by the next decode, before its batch, in the order asked: a donor
            # that is itself being filled this round is copied after its own copy.
            llama_cpp.llama_memory_seq_cp(self._memory, donor.seq, slot.seq, -1, -1)
            keep = min(shared, most)
        if not llama_cpp.llama_memory_seq_rm(self._memory, slot.seq, keep, -1):
            llama_cpp.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
            keep = 0
        slot.cached = job.prompt[:keep]
        slot.read = keep
        slot.sampler = sampler_chain(job.sampling)
        self._reused += keep

    def _donor(self, slot: Slot, prompt: list[int]) -> tuple[Slot | None, int]:
        """The other slot whose cells hold the longest prefix of `prompt`, and its length.

        Between steps every cell a slot lists in `cached` is computed (a failed decode
        clears them all), so a busy slot gives as well as an idle one.
        """
        best, shared = None, 0
        for other in self.slots:
            if other is not slot:
                n = common_prefix(other.cached, prompt)
                if n > shared:
                    best, shared = other, n
        return best, shared

    def _step(self) -> None:
        for slot in self.slots:
            if slot.job is not None and slot.job.cancelled.is_set():
                self._release(slot, None)
        batch = self._batch
        n = 0

        def add(slot: Slot, token: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = len(slot.cached)
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = slot.seq
            batch.logits[n] = logits
            slot.cached.append(token)
            if logits:
                slot.row = n
            n += 1

        reading: list[Slot] = []
        for slot in self.slots:
            slot.row = -1
            if slot.job is None:
                continue
            if slot.read < len(slot.job.prompt):
                reading.append(slot)
            else:
                add(slot, slot.last, True)
        # Prompts share what the generating sequences leave of the batch, oldest first.
        for slot in reading:
            assert slot.job is not None
            prompt = slot.job.prompt
            take = min(self.n_batch - n, len(prompt) - slot.read)
            for i in range(slot.read, slot.read + take):
                add(slot, prompt[i], i == len(prompt) - 1)
            slot.read += take
            self._read += take
        if n == 0:
            return
        batch.n_tokens = n
        threads = self._threads.pick(n)
        if threads != self._threads_now:
            llama_cpp.llama_set_n_threads(self.ctx, threads, threads)
            self._threads_now = threads
        began = time.perf_counter()
        code = llama_cpp.llama_decode(self.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        self._threads.record(n, threads, time.perf_counter() - began)
        for slot in self.slots:
            if slot.row < 0 or slot.job is None:
                continue
            token = self._sample(slot)
            if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                self._release(slot, "stop")
                continue
            slot.last = token
            reason = slot.job.token(token)
            if reason is not None:
                self._release(slot, reason)

    def _sample(self, slot: Slot) -> int:
        if slot.sampler is None:
            # Greedy: the first of the highest logits, as llama.cpp's greedy sampler picks,
            # read in place. A sampler copies the whole vocabulary (49,152 entries for
            # SmolLM2) into a candidate list first: ~5% of a step's time.
            logits = llama_cpp.llama_get_logits_ith(self.ctx, slot.row)
            return int(numpy.ctypeslib.as_array(logits, shape=(self._n_vocab,)).argmax())
        return int(llama_cpp.llama_sampler_sample(slot.sampler, self.ctx, slot.row))

    def _release(self, slot: Slot, outcome: FinishReason | AssistantError | None) -> None:
        job = slot.job
        assert job is not None
        if slot.sampler is not None:
            llama_cpp.llama_sampler_free(slot.sampler)
        slot.sampler = None
        slot.job = None
        if slot.read < len(job.prompt) or isinstance(outcome, AssistantError):
            # Cells half-written or of unknown state: nothing worth keeping.
            llama_cpp.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
            slot.cached = []
        with self._changed:
            self._active -= 1
            self._running[job.user] -= 1
            if not self._running[job.user]:
                del self._running[job.user]
        if isinstance(outcome, AssistantError):
            job.fail(outcome)
        else:
            job.end(outcome)
