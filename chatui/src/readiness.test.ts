import { describe, expect, it } from "vitest";
import type { ModelState } from "./api";
import { modelStateOf, pollUntilReady, READY_POLL_DELAYS_MS, sleep } from "./readiness";

/** A poller driven by fakes: `answers` in turn, every wait and visibility wait recorded. */
function harness(answers: (ModelState | Error)[], options: { hiddenUntilCheck?: number; abortAfterChecks?: number } = {}) {
  const ac = new AbortController();
  const log: string[] = [];
  const states: ModelState[] = [];
  let checks = 0;
  const run = (immediate: boolean) =>
    pollUntilReady({
      signal: ac.signal,
      immediate,
      check: async () => {
        const answer = answers[checks++] ?? "loading";
        log.push(`check${checks}`);
        if (options.abortAfterChecks === checks) ac.abort();
        if (answer instanceof Error) throw answer;
        return answer;
      },
      wait: async (ms) => {
        log.push(`wait ${ms}`);
      },
      whenVisible: async () => {
        if (options.hiddenUntilCheck !== undefined && checks < options.hiddenUntilCheck) log.push("until visible");
      },
      onState: (s) => states.push(s),
    });
  return { run, log, states, abort: () => ac.abort() };
}

describe("pollUntilReady", () => {
  it("checks at once on page load and backs off until the model is ready", async () => {
    const h = harness(["loading", "loading", "unreachable", "loading", "ready"]);
    await expect(h.run(true)).resolves.toBe(true);
    expect(h.states).toEqual(["loading", "loading", "unreachable", "loading", "ready"]);
    expect(h.log).toEqual(["check1", "wait 1000", "check2", "wait 2000", "check3", "wait 3000", "check4", "wait 5000", "check5"]);
  });

  it("after a failed reply, waits before the first check", async () => {
    const h = harness(["ready"]);
    await expect(h.run(false)).resolves.toBe(true);
    expect(h.log).toEqual(["wait 1000", "check1"]);
  });

  it("keeps the longest delay once the backoff is used up (no busy loop)", async () => {
    const answers: ModelState[] = Array.from({ length: 9 }, () => "loading");
    const h = harness([...answers, "ready"]);
    await h.run(true);
    const waits = h.log.filter((l) => l.startsWith("wait")).map((l) => Number(l.slice(5)));
    expect(waits).toHaveLength(9);
    expect(waits.slice(0, READY_POLL_DELAYS_MS.length)).toEqual(READY_POLL_DELAYS_MS);
    expect(waits.slice(READY_POLL_DELAYS_MS.length)).toEqual([10000, 10000, 10000]);
    expect(waits.every((ms) => ms >= 1000)).toBe(true);
  });

  it("counts a failed check as unreachable and goes on", async () => {
    const h = harness([new TypeError("network"), "ready"]);
    await expect(h.run(true)).resolves.toBe(true);
    expect(h.states).toEqual(["unreachable", "ready"]);
  });

  it("asks only when the page is visible", async () => {
    const h = harness(["loading", "ready"], { hiddenUntilCheck: 2 });
    await h.run(true);
    expect(h.log).toEqual(["until visible", "check1", "wait 1000", "until visible", "check2"]);
  });

  it("stops when aborted (the person left the chat) and reports nothing more", async () => {
    const h = harness(["loading", "loading", "ready"], { abortAfterChecks: 2 });
    await expect(h.run(true)).resolves.toBe(false);
    expect(h.states).toEqual(["loading"]);
    expect(h.log).toEqual(["check1", "wait 1000", "check2"]);
  });
});

describe("readiness helpers", () => {
  it("reads the model's state from a reply's error code, not its words", () => {
    expect(modelStateOf("assistant_not_ready")).toBe("loading");
    expect(modelStateOf("assistant_unavailable")).toBe("unreachable");
    expect(modelStateOf("assistant_error")).toBeNull();
    expect(modelStateOf(undefined)).toBeNull();
  });

  it("sleep ends early when aborted", async () => {
    const ac = new AbortController();
    const waited = sleep(60_000, ac.signal);
    ac.abort();
    await expect(waited).resolves.toBeUndefined();
  });
});
