/**
 * Waiting for the model: ask `GET /api/health/ready` until it says ready, with backoff.
 *
 * The loop never spins: every check after the first waits a growing delay, a hidden page is
 * not asked at all until it is shown again, and aborting (the person left the chat, or the
 * model turned ready elsewhere) ends it at once. Pure apart from what it is given, so the
 * unit tests drive it with fakes.
 */

import type { ModelState } from "./api";

/** Waits between checks; the last one repeats for as long as the model is not ready. */
export const READY_POLL_DELAYS_MS = [1000, 2000, 3000, 5000, 8000, 10000];

/** Reply error codes that mean "the model is not there yet": waiting is the fix. */
export const MODEL_WAIT_CODES: ReadonlySet<string> = new Set(["assistant_not_ready", "assistant_unavailable"]);

/** What the failure of a reply says about the model. */
export function modelStateOf(code: string | undefined): ModelState | null {
  if (code === "assistant_not_ready") return "loading";
  if (code === "assistant_unavailable") return "unreachable";
  return null;
}

export interface PollOptions {
  check: (signal: AbortSignal) => Promise<ModelState>;
  /** Resolves after `ms`, or at once when `signal` aborts. */
  wait: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Resolves when the page is visible (at once if it is), or when `signal` aborts. */
  whenVisible: (signal: AbortSignal) => Promise<void>;
  /** Every answer, as it comes. */
  onState: (state: ModelState) => void;
  signal: AbortSignal;
  /** Check at once (page load), or wait the first delay first (right after a failure). */
  immediate?: boolean;
  delays?: readonly number[];
}

/** Poll until the model is ready (true) or `signal` aborts (false). */
export async function pollUntilReady(options: PollOptions): Promise<boolean> {
  const { check, wait, whenVisible, onState, signal } = options;
  const delays = options.delays ?? READY_POLL_DELAYS_MS;
  let attempt = 0;
  if (!options.immediate) {
    await wait(delays[0] ?? 0, signal);
    attempt = 1;
  }
  while (!signal.aborted) {
    await whenVisible(signal);
    if (signal.aborted) break;
    let state: ModelState;
    try {
      state = await check(signal);
    } catch {
      if (signal.aborted) break;
      state = "unreachable";
    }
    if (signal.aborted) break;
    onState(state);
    if (state === "ready") return true;
    await wait(delays[Math.min(attempt, delays.length - 1)] ?? 0, signal);
    attempt++;
  }
  return false;
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

export function whenVisible(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (!document.hidden || signal.aborted) return resolve();
    function done() {
      if (document.hidden && !signal.aborted) return;
      document.removeEventListener("visibilitychange", done);
      signal.removeEventListener("abort", done);
      resolve();
    }
    document.addEventListener("visibilitychange", done);
    signal.addEventListener("abort", done);
  });
}
