/** What the page knows about the model while it is not ready, kept up to date by polling. */

import { useEffect, useState } from "react";
import { getReadiness, type ModelState } from "./api";
import { pollUntilReady, sleep, whenVisible } from "./readiness";

export interface ModelStatus {
  /** The page-load check found the model not ready: its state now, until it turns ready. */
  banner: Exclude<ModelState, "ready"> | null;
  /** For the reply waiting for the model (see below): its state now, "ready" once it is. */
  reply: ModelState | null;
}

/**
 * `waitingFor`: the open chat's last reply failed because the model was loading or
 * unreachable (what it said), else null; `replyKey` names that reply. The page polls while
 * the banner is up or such a reply is open, and stops when the person leaves that chat.
 */
export function useModelStatus(waitingFor: ModelState | null, replyKey: string | null): ModelStatus {
  const [banner, setBanner] = useState<Exclude<ModelState, "ready"> | null>(null);
  const [seen, setSeen] = useState<{ key: string | null; state: ModelState } | null>(null);

  // Page load: one check at once; the loop below takes over if the model is not ready.
  useEffect(() => {
    const ac = new AbortController();
    getReadiness(ac.signal).then(
      (state) => {
        if (state !== "ready") setBanner(state);
      },
      () => undefined,
    );
    return () => ac.abort();
  }, []);

  const needed = banner !== null || waitingFor !== null;
  useEffect(() => {
    if (!needed) return;
    const ac = new AbortController();
    void pollUntilReady({
      check: getReadiness,
      wait: sleep,
      whenVisible,
      signal: ac.signal,
      onState: (state) => {
        setSeen({ key: replyKey, state });
        setBanner((shown) => (shown === null || state === "ready" ? null : state));
      },
    });
    return () => ac.abort();
  }, [needed, replyKey]);

  const reply = waitingFor === null ? null : seen !== null && seen.key === replyKey ? seen.state : waitingFor;
  return { banner, reply };
}
