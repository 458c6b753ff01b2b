"""`python -m bench.profile`: where the stack's CPU goes under load, sampled by py-spy.

Starts a stack like the benchmark's, puts one of two loads on it, and samples conversation
and assistant with py-spy meanwhile (non-blocking, so the processes run at full speed):

- `turns` (default): wrk's non-streaming chat turns through nginx (scenario 5's load);
- `stream`: long replies with no delay through nginx (scenario 3's load), several at once;
- `chat`: one short streamed turn at a time through nginx (scenario 1's path at 1 chat):
  what each turn costs on its way to the first token.

Writes to bench/results/profile/: `<service>-<load>.txt`, the functions and packages that
use the most CPU (self and inclusive), and `<service>-<load>.svg`, a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.clients import create_sessions, http_session, sse_turn
from bench.scenarios.sustained import session_file, wrk
from bench.stack import Stack, running_stack

OUT = Path(__file__).resolve().parent / "results" / "profile"
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    return found


def record(pid: int, seconds: int, out: Path, fmt: str) -> subprocess.Popen[bytes]:
    cmd = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        "250",
        "--nonblocking",
        "--format",
        fmt,
        "--output",
        str(out),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def package(path: str) -> str:
    """The package a frame's file belongs to: site-packages' top folder, or our own."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/lib/python3" in path or path.startswith("<"):
        return "stdlib:" + Path(path).stem
    return path.split("/", 1)[0] if "/" in path else path


def summarize(collapsed: Path, title: str, top: int = 60) -> str:
    """Self and inclusive sample counts by function and by package from py-spy's raw output."""
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    incl_pkg: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [m for m in (FRAME.match(f) for f in stack.split(";")) if m]
        # The process and thread frames py-spy puts first are not Python code.
        if not frames:
            continue
        total += count
        names = [f"{m['func']} ({m['file']})" for m in frames]
        pkgs = [package(m["file"]) for m in frames]
        self_fn[names[-1]] += count
        self_pkg[pkgs[-1]] += count
        for name in set(names):
            incl_fn[name] += count
        for pkg in set(pkgs):
            incl_pkg[pkg] += count
    if not total:
        return f"# {title}\n\nno samples (was the process idle?)\n"

    def table(counter: Counter[str]) -> list[str]:
        return [f"{100 * n / total:5.1f}%  {name}" for name, n in counter.most_common(top)]

    return "\n".join(
        [
            f"# {title}",
            f"{total} samples while busy (idle time in the event loop's wait "
            "is not sampled with --idle off)",
            "",
            "## packages, self",
            *table(self_pkg),
            "",
            "## packages, inclusive",
            *table(incl_pkg),
            "",
            "## functions, self",
            *table(self_fn),
            "",
            "## functions, inclusive",
            *table(incl_fn),
            "",
        ]
    )


async def turns_load(stack: Stack, seconds: int) -> None:
    async with http_session() as http:
        sessions = await session_file(http, stack.conversation.url, 256)
    await wrk(stack.nginx.url, 8, seconds, sessions)


async def stream_load(stack: Stack, seconds: int) -> None:
    stack.fake.script(
        {"tokens": [f"tok{i} " for i in range(2000)], "delay_ms": 0, "times": 100_000}
    )
    async with http_session() as http:
        sessions = await create_sessions(http, stack.conversation.url, 4)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds

        async def chat(index: int) -> None:
            while loop.time() < deadline:
                await sse_turn(http, stack.nginx.url, sessions[index], "long")

        await asyncio.gather(*(chat(i) for i in range(len(sessions))))


async def chat_load(stack: Stack, seconds: int) -> None:
    async with http_session() as http:
        sessions = await create_sessions(http, stack.conversation.url, 64)
        loop = asyncio.get_running_loop()
        deadline, turn = loop.time() + seconds, 0
        while loop.time() < deadline:
            # A fresh session every 4 turns, as scenario 1: history stays short.
            await sse_turn(http, stack.nginx.url, sessions[turn // 4 % len(sessions)], "hello")
            turn += 1


LOADS = {"turns": turns_load, "stream": stream_load, "chat": chat_load}


async def profile(load: str, seconds: int) -> list[Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with running_stack() as stack:
        targets = {"conversation": stack.conversation, "assistant": stack.assistant}
        raw = {name: OUT / f"{name}-{load}.collapsed" for name in targets}
        svg = {name: OUT / f"{name}-{load}.svg" for name in targets}
        samplers = [record(s.proc.pid, seconds, raw[n], "raw") for n, s in targets.items()]
        samplers += [record(s.proc.pid, seconds, svg[n], "flamegraph") for n, s in targets.items()]
        await LOADS[load](stack, seconds)
        for sampler in samplers:
            _, err = sampler.communicate(timeout=seconds + 60)
            if sampler.returncode != 0:
                raise SystemExit(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    for name in targets:
        text = summarize(raw[name], f"{name} under the '{load}' load ({seconds} s)")
        summary = OUT / f"{name}-{load}.txt"
        summary.write_text(text)
        raw[name].unlink()
        written += [summary, svg[name]]
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--load", choices=sorted(LOADS), default="turns")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    for path in asyncio.run(profile(args.load, args.seconds)):
        print(path)


if __name__ == "__main__":
    main()
