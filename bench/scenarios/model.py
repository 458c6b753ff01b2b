"""Scenario 8: the embedded SmolLM2-135M through assistant vs llama-cpp-python called directly.

Both load the same GGUF with the same settings (through assistant's own LocalProvider, so
the thread count and context size match), render the same prompt with the model's chat
template and decode greedily (temperature 0), so both produce the same tokens. Direct runs
in this process while assistant is idle, then one request goes through assistant while this
process only reads the stream; the two alternate. Tokens per second are counted from the
first token to the last; the first token's time includes the prompt.
"""

from __future__ import annotations

import asyncio
import codecs
import time
from typing import Any

from assistant.config import Settings
from assistant.providers.local import LocalProvider
from bench.clients import Turn, openai_stream
from bench.context import Bench
from bench.report import Outcome, at_least, at_most
from bench.stack import start_local_assistant
from bench.stats import median, ms, summary

PROMPT = "Tell me a long story about a lighthouse keeper and a storm."


def direct(provider: LocalProvider, messages: list[dict[str, str]], max_tokens: int) -> Turn:
    """llama-cpp-python's generate loop, timed like the client times assistant's stream."""
    from llama_cpp import llama_vocab_is_eog

    llm, template = provider.llm, provider.template
    assert llm is not None and template is not None
    turn = Turn(start=time.perf_counter())
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
    return turn


def rate(turn: Turn) -> float:
    span = turn.token_times[-1] - turn.token_times[0]
    return (len(turn.token_times) - 1) / span if span > 0 else float("nan")


async def run(bench: Bench) -> Outcome:
    scale = bench.scale
    settings = Settings(assistant_provider="local")
    messages = [
        {"role": "system", "content": settings.assistant_system_prompt},
        {"role": "user", "content": PROMPT},
    ]
    provider = LocalProvider(settings)
    await provider.start()
    server = start_local_assistant(LOCAL_MAX_TOKENS=str(scale.model_tokens))
    found: dict[str, list[Turn]] = {"direct": [], "assistant": []}
    try:
        for rep in range(scale.model_reps + 1):  # the first round warms both up
            d = await asyncio.to_thread(direct, provider, messages, scale.model_tokens)
            a = await openai_stream(
                bench.http,
                server.url,
                PROMPT,
                messages=messages,
                temperature=0,
                max_tokens=scale.model_tokens,
            )
            if not (d.ok and a.ok):
                raise RuntimeError(f"model run failed: direct {d.error}, assistant {a.error}")
            if rep:
                found["direct"].append(d)
                found["assistant"].append(a)
    finally:
        server.stop()
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
    speed = figures["assistant"]["median_tokens_per_s"] / figures["direct"]["median_tokens_per_s"]
    added = figures["assistant"]["ttft_ms"]["p50"] - figures["direct"]["ttft_ms"]["p50"]
    targets = [
        at_least(
            8,
            "embedded model tokens/s, assistant / direct",
            0.99,
            round(speed, 3),
            "x",
            note=f"{figures['assistant']['median_tokens_per_s']} vs "
            f"{figures['direct']['median_tokens_per_s']} tokens/s",
        ),
        at_most(
            8,
            "embedded model first token added by assistant, p50",
            5,
            round(added, 2),
            "ms",
            note=f"direct p50 {figures['direct']['ttft_ms']['p50']} ms",
        ),
    ]
    return Outcome({"prompt": PROMPT, "max_tokens": scale.model_tokens, **figures}, targets)
