"""Load against limits: one abusive client (many sockets, fast frames, endless generation,
new sessions in a loop, a burst of requests) while ten polite clients chat. The polite ones
must see no error, and their p99 time to first token under abuse must stay within twice the
unloaded figure, measured in the same run: the polite clients alone before the abuse and
again once it has passed (the same machine, whatever else it is doing meanwhile).

LOAD_SCALE (default 1) multiplies each polite client's turns per phase (8 at 1).
"""

from __future__ import annotations

import os

from tests.conftest import Stack
from tests.integration.load.abuser import Plan as AbusePlan
from tests.integration.load.abuser import abusing
from tests.integration.load.cpu import CpuMeter
from tests.integration.load.figures import Phase, refusals
from tests.integration.load.polite import Plan as ChatPlan
from tests.integration.load.polite import Record, chat
from tests.support.fakes import FakeControl

SCALE = int(os.environ.get("LOAD_SCALE", "1"))
TURNS = 8 * SCALE
# A turn each ~1.1 s: under a browser's 60 turns a minute (LIMIT_CLIENT_TURNS), at any scale.
PAUSE = 1.1
# Each client from an address of its own: ten people, and the abuser elsewhere.
POLITE = [f"127.0.1.{i}" for i in range(1, 11)]
ABUSER = "127.0.0.2"
TARGET = 2.0
# Each limit the abuser must have run into (the test fails if the abuse did not happen).
REFUSALS = (
    "ws upgrade 429",  # nginx: requests per second, connections of the address
    "POST messages 429 (nginx)",
    "POST messages 429 (conversation)",  # the address's replies at once, turns per window
    "ws error frame rate_limited",  # the same, or a socket's frame rate
    "ws closed 1008",  # frames kept coming past the frame rate
    "ws closed 1009",  # a frame past the size cap
    "ws error frame invalid",  # binary frames
)


async def measured(stack: Stack, meter: CpuMeter, name: str) -> tuple[Phase, list[Record]]:
    meter.start()
    records = await chat(ChatPlan(stack.url, TURNS, PAUSE), POLITE)
    meter.stop()
    phase = Phase.of(name, records)
    print(f"{phase}\n  CPU: {meter}")
    return phase, records


async def test_polite_clients_keep_their_time_to_first_token_under_abuse(
    load_stack: Stack,
) -> None:
    assert load_stack.upstream is not None
    model = FakeControl(load_stack.upstream)
    meter = CpuMeter({s.name: s.proc.pid for s in load_stack.servers()})
    # Connections, scripts loaded into Redis, pools filled: not what the phases measure.
    await chat(ChatPlan(load_stack.url, 2, PAUSE), POLITE)
    print()
    before, records = await measured(load_stack, meter, "polite alone, before")

    abuse = AbusePlan(
        load_stack.url,
        ABUSER,
        # Bounded: it stops by itself long after the polite clients' phase would have ended.
        seconds=2 * TURNS * (PAUSE + 1) + 30,
        sockets=48,
        streams=16,
        creators=2,
        burst=300,
        # More than its address may have replies written at once (LIMIT_IP_GENERATIONS, 32).
        sessions=40,
    )
    with abusing(abuse) as finish:
        abused, _ = await measured(load_stack, meter, "polite under abuse")
        outcome = finish()
    print(f"  the abuser itself: {outcome.cpu:.1f} s of CPU in all")
    # The replies the abuser walked away from are still written (to their cap): the second
    # unloaded phase starts once the model has answered every request.
    model.settled(len(model.requests()), timeout=30)
    after, more = await measured(load_stack, meter, "polite alone, after")
    alone = Phase.of("polite alone, both", records + more)
    ratio = abused.p99 / alone.p99
    print(alone)
    print(f"p99 under abuse / alone: {ratio:.2f} (target <= {TARGET})")
    print(f"the abuser ({ABUSER}), what it did and was told:\n{refusals(outcome.counts)}")

    for phase in (before, abused, after):
        assert not phase.problems, (phase.name, phase.problems)
        assert len(phase.ttft) == TURNS * len(POLITE), phase.name
    for refusal in REFUSALS:
        assert outcome.counts.get(refusal), (refusal, outcome.counts)
    assert ratio <= TARGET, (str(alone), str(abused))
