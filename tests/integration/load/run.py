"""One run of the suite: the ten polite clients alone, then beside the abuser's control (a
process as busy as the abuser, sending nothing), then under the abuser, then beside the
control again once the abuse has passed, with every figure printed (run pytest with -s)."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass

from tests.conftest import Stack
from tests.integration.load.abuser import Outcome, abusing, spinning
from tests.integration.load.abuser import Plan as AbusePlan
from tests.integration.load.cpu import CpuMeter
from tests.integration.load.figures import Phase, refusals
from tests.integration.load.polite import Plan as ChatPlan
from tests.integration.load.polite import Record, chat
from tests.support.fake_control import FakeControl

SCALE = int(os.environ.get("LOAD_SCALE", "2"))
TURNS = 8 * SCALE  # per polite client and phase
# A turn each ~1.1 s: under a browser's 60 turns a minute (LIMIT_CLIENT_TURNS), at any scale.
PAUSE = 1.1
# Each client from an address of its own: ten people, and the abuser elsewhere. nginx trusts
# no proxy here, so the address a client connects from is the one every limit counts.
POLITE = [f"127.0.1.{i}" for i in range(1, 11)]
ABUSER = "127.0.0.2"


@dataclass(frozen=True)
class LoadRun:
    alone: Phase  # nothing else running
    control: Phase  # beside the control, before and after the abuse together
    abused: Phase
    phases: tuple[Phase, ...]  # each as measured, in order
    abuser: Outcome

    @property
    def ratio(self) -> float:
        """Polite p99 time to first token under abuse over the one beside the control: what
        the abuser's traffic costs, without what its sharing the product's cores costs."""
        return self.abused.p99 / self.control.p99

    @property
    def ratio_alone(self) -> float:
        """The same over the one with nothing else running: the traffic and the sharing."""
        return self.abused.p99 / self.alone.p99


@contextlib.contextmanager
def no_collector_pauses() -> Iterator[None]:
    """The polite clients are timed in this process, which holds the whole test session's
    objects: a full collection here takes tens of milliseconds, and a turn it fell on
    would count it as the product's. A phase allocates little: the collector waits."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def measured(stack: Stack, meter: CpuMeter, name: str) -> tuple[Phase, list[Record]]:
    meter.start()
    with no_collector_pauses():
        records = await chat(ChatPlan(stack.url, TURNS, PAUSE), POLITE)
    meter.stop()
    phase = Phase.of(name, records)
    print(f"{phase}\n  CPU: {meter}")
    return phase, records


async def run_load(stack: Stack) -> LoadRun:
    assert stack.upstream is not None
    model = FakeControl(stack.upstream)
    groups: dict[str, list[int]] = {}
    for server in stack.servers():
        groups.setdefault(server.name, []).append(server.proc.pid)
    meter = CpuMeter(groups)
    # Connections, scripts loaded into Redis, pools filled: not what the phases measure.
    await chat(ChatPlan(stack.url, 2, PAUSE), POLITE)
    print()
    alone, _ = await measured(stack, meter, "polite alone")
    seconds = 2 * TURNS * (PAUSE + 1) + 30  # bounded: long after a phase would have ended
    with spinning(seconds) as finish:
        control, records = await measured(stack, meter, "polite beside the control")
        print(f"  the control itself: {finish().cpu:.1f} s of CPU in all")
    abuse = AbusePlan(
        stack.url,
        ABUSER,
        seconds=seconds,
        sockets=48,
        streams=16,
        creators=2,
        burst=300,
        # More than its address may have replies written at once (LIMIT_IP_GENERATIONS, 32).
        sessions=40,
    )
    with abusing(abuse) as finish:
        abused, _ = await measured(stack, meter, "polite under abuse")
        outcome = finish()
    print(f"  the abuser itself: {outcome.cpu:.1f} s of CPU in all")
    # The replies the abuser walked away from are still written (to their cap): the second
    # control phase starts once the model has answered every request.
    model.settled(len(model.requests()), timeout=30)
    with spinning(seconds) as finish:
        after, more = await measured(stack, meter, "polite beside the control, after")
        print(f"  the control itself: {finish().cpu:.1f} s of CPU in all")
    both = Phase.of("polite beside the control, both", records + more)
    run = LoadRun(alone, both, abused, (alone, control, abused, after), outcome)
    print(both)
    print(f"p99 under abuse / beside the control: {run.ratio:.2f}")
    print(f"p99 under abuse / alone: {run.ratio_alone:.2f}")
    print(f"the abuser ({ABUSER}), what it did and was told:\n{refusals(outcome.counts)}")
    return run
