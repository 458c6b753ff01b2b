"""Scenario 8: the embedded SmolLM2-135M through assistant vs llama-cpp-python called directly.

Both load the same GGUF with the same settings (through assistant's own LocalProvider, so
the thread count and context size match), render the same prompt with the model's chat
template and decode greedily (temperature 0), so both produce the same tokens. Direct runs
in this process while assistant is idle, then one request goes through assistant while this
process only reads the stream. Tokens per second are counted from the first token to the
last; the first token's time includes the prompt.

The target is within 1% of direct, and a single pair of runs varies by more than that on
two shared cores, so the figure is the median of many paired ratios: after a warm-up pair,
PAIRS pairs (or as many as fit in BUDGET_S), each pair's two runs back to back, the order
swapped every pair (direct first, then assistant first) so that neither route always runs
on a machine just woken or just warmed. Each pair gives assistant's tokens/s over direct's;
their median, the distribution-free 95% confidence interval of that median (order
statistics) and their range are reported, and whether the interval lies above, below or
across the target. Assistant's per-token cost is the median paired difference of the mean
time between tokens, and, immune to other processes taking the cores, the CPU time per
token over all pairs: assistant's whole process (generation thread, event loop, HTTP) over
the direct loop's thread.
"""

from __future__ import annotations

import asyncio
import codecs
import math
import time
from typing import Any

from assistant.config import Settings
from assistant.providers.local import LocalProvider
from bench import procs, stats
from bench.clients import Turn, openai_stream
from bench.context import Bench
from bench.report import Outcome, at_least, at_most
from bench.stack import start_local_assistant
from bench.stats import median, ms, percentile, summary

PROMPT = "Tell me a long story about a lighthouse keeper and a storm."
PAIRS = 21  # odd: the median is one pair's ratio; ~2 s a pair with 128 tokens
BUDGET_S = 75.0  # stop early past this (at least MIN_PAIRS) on a slow or busy machine
MIN_PAIRS = 5
TARGET = 0.99


def direct(
    provider: LocalProvider,
    llm: Any,
    messages: list[dict[str, str]],
    max_tokens: int,
    cpu: list[float],
) -> Turn:
    """llama-cpp-python's generate loop, timed like the client times assistant's stream."""
    from llama_cpp import llama_vocab_is_eog

    template = provider.template
    assert template is not None
    turn = Turn(start=time.perf_counter())
    cpu_before = time.thread_time()
    tokens = llm.tokenize(template.render(messages).encode(), add_bos=False, special=True)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    vocab = llm._model.vocab
    generator = llm.generate(tokens, temp=0.0, top_p=0.9)
    generated = 0
    try:
        for token in generator:
            if llama_vocab_is_eog(vocab, token):
                break
            generated += 1
            text = decoder.decode(llm.detokenize([token]))
            if text:
                turn.token_times.append(time.perf_counter())
                turn.text_chars += len(text)
            if generated >= max_tokens:
                break
    finally:
        generator.close()
    turn.end = time.perf_counter()
    cpu.append(time.thread_time() - cpu_before)
    return turn


def rate(turn: Turn) -> float:
    span = turn.token_times[-1] - turn.token_times[0]
    return (len(turn.token_times) - 1) / span if span > 0 else float("nan")


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median: the k-th smallest and k-th
    largest values, k the largest rank whose binomial(n, 1/2) tail stays within the error."""
    ordered = sorted(values)
    n = len(ordered)
    tail, k = 0.0, 0
    while k < n // 2:
        tail += math.comb(n, k) / 2**n
        if tail > (1 - confidence) / 2:
            break
        k += 1
    if k == 0:  # too few values for this confidence: the range is all there is
        return ordered[0], ordered[-1]
    return ordered[k - 1], ordered[n - k]


def gap_us(turn: Turn) -> float:
    """Mean time between tokens, microseconds."""
    return 1e6 / rate(turn)


def typical_gap(turn: Turn) -> float:
    """Median time between tokens: blind to a few gaps stretched by other processes."""
    return median(turn.gaps())


def paired(found: dict[str, list[Turn]]) -> dict[str, Any]:
    """Assistant over direct, pair by pair."""
    pairs = list(zip(found["direct"], found["assistant"], strict=True))
    ratios = [rate(a) / rate(d) for d, a in pairs]
    extra = [gap_us(a) - gap_us(d) for d, a in pairs]
    typical = [typical_gap(d) / typical_gap(a) for d, a in pairs]
    low, high = median_interval(ratios)
    return {
        # The same from each run's median gap between tokens (extra data, not the target).
        "median_gap_ratio": round(median(typical), 4),
        "ci95_median_gap_ratio": [round(v, 4) for v in median_interval(typical)],
        "ci95_added_us_per_token": [round(v, 1) for v in median_interval(extra)],
        "pairs": len(pairs),
        "ratios": [round(r, 4) for r in ratios],
        "median_ratio": round(median(ratios), 4),
        "ci95_median_ratio": [round(low, 4), round(high, 4)],
        "p25_ratio": round(percentile(ratios, 25), 4),
        "p75_ratio": round(percentile(ratios, 75), 4),
        "min_ratio": round(min(ratios), 4),
        "max_ratio": round(max(ratios), 4),
        "added_us_per_token": [round(x, 1) for x in extra],
        "median_added_us_per_token": round(median(extra), 1),
    }


def verdict(low: float, high: float) -> str:
    if low >= TARGET:
        return f"the whole interval is at or above {TARGET}"
    if high < TARGET:
        return f"the whole interval is below {TARGET}"
    return f"the interval straddles {TARGET}: within noise of the target"


async def run(bench: Bench) -> Outcome:
    scale = bench.scale
    pairs = scale.model_reps if scale.quick else max(scale.model_reps, PAIRS)
    settings = Settings(assistant_provider="local")
    messages = [
        {"role": "system", "content": settings.assistant_system_prompt},
        {"role": "user", "content": PROMPT},
    ]
    provider = LocalProvider(settings)
    await provider.start()
    llm = provider.unbatched_llama()
    server = start_local_assistant(LOCAL_MAX_TOKENS=str(scale.model_tokens))

    # CPU seconds of each counted run: the direct loop's thread; assistant's whole process
    # (its generation thread, event loop and HTTP), read from /proc in 10 ms ticks.
    cpu: dict[str, list[float]] = {"direct": [], "assistant": []}

    async def through_assistant() -> Turn:
        before = procs.usage(server.proc.pid).cpu_seconds
        turn = await openai_stream(
            bench.http,
            server.url,
            PROMPT,
            model=provider.model_id,  # assistant routes by model: the local one's id
            messages=messages,
            temperature=0,
            max_tokens=scale.model_tokens,
        )
        cpu["assistant"].append(procs.usage(server.proc.pid).cpu_seconds - before)
        return turn

    async def directly() -> Turn:
        return await asyncio.to_thread(
            direct, provider, llm, messages, scale.model_tokens, cpu["direct"]
        )

    found: dict[str, list[Turn]] = {"direct": [], "assistant": []}
    began = time.monotonic()
    try:
        for rep in range(pairs + 1):  # the first pair warms both up
            if rep % 2:
                a = await through_assistant()
                d = await directly()
            else:
                d = await directly()
                a = await through_assistant()
            if not (d.ok and a.ok):
                raise RuntimeError(f"model run failed: direct {d.error}, assistant {a.error}")
            if rep:
                found["direct"].append(d)
                found["assistant"].append(a)
            else:  # the warm-up pair is not counted
                cpu["direct"].clear()
                cpu["assistant"].clear()
            if rep >= MIN_PAIRS and time.monotonic() - began > BUDGET_S:
                break
    finally:
        server.stop()
        llm.close()
        await provider.close()
    figures: dict[str, dict[str, Any]] = {
        name: {
            "ttft_ms": summary([ms(t.ttft) for t in turns]),
            "tokens_per_s": [round(rate(t), 1) for t in turns],
            "median_tokens_per_s": round(median([rate(t) for t in turns]), 1),
            "tokens": [len(t.token_times) for t in turns],
        }
        for name, turns in found.items()
    }
    ratio = paired(found)
    cpu_per_token = {
        name: 1000 * sum(cpu[name]) / sum(len(t.token_times) for t in turns)
        for name, turns in found.items()
    }
    ratio["cpu_ms_per_token"] = {k: round(v, 3) for k, v in cpu_per_token.items()}
    cpu_ratio = cpu_per_token["assistant"] / cpu_per_token["direct"]
    ratio["cpu_per_token_ratio"] = round(cpu_ratio, 4)
    low, high = ratio["ci95_median_ratio"]
    of_medians = (
        figures["assistant"]["median_tokens_per_s"] / figures["direct"]["median_tokens_per_s"]
    )
    added = figures["assistant"]["ttft_ms"]["p50"] - figures["direct"]["ttft_ms"]["p50"]
    direct_ttft = float(figures["direct"]["ttft_ms"]["p50"])
    targets = [
        at_least(
            8,
            "embedded model tokens/s, assistant / direct",
            TARGET,
            ratio["median_ratio"],
            "x",
            note=f"median of {ratio['pairs']} paired ratios; 95% CI of the median "
            f"{low}-{high} ({verdict(low, high)}); quartiles {ratio['p25_ratio']}-"
            f"{ratio['p75_ratio']}, range {ratio['min_ratio']}-{ratio['max_ratio']}; "
            f"assistant adds {ratio['median_added_us_per_token']} us per token (median; CI "
            f"{ratio['ci95_added_us_per_token'][0]} to {ratio['ci95_added_us_per_token'][1]}); "
            f"by each run's median gap between tokens {ratio['median_gap_ratio']} (CI "
            f"{ratio['ci95_median_gap_ratio'][0]}-{ratio['ci95_median_gap_ratio'][1]}); "
            f"CPU per token, assistant's process / the direct loop's thread, all pairs: "
            f"{cpu_ratio:.3f} ({cpu_per_token['assistant']:.2f} vs "
            f"{cpu_per_token['direct']:.2f} ms); "
            f"{figures['assistant']['median_tokens_per_s']} vs "
            f"{figures['direct']['median_tokens_per_s']} tokens/s "
            f"(ratio of medians {of_medians:.3f})",
        ),
        at_most(
            8,
            "embedded model first token added by assistant / direct's first token, p50",
            # 5 ms of the ~14 ms the model takes to its first token on these machines.
            0.35,
            stats.ratio(added, direct_ttft, 3),
            "x",
            note=f"+{added:.2f} ms on a direct p50 of {direct_ttft} ms",
        ),
    ]
    return Outcome(
        {"prompt": PROMPT, "max_tokens": scale.model_tokens, **figures, "paired": ratio},
        targets,
    )
