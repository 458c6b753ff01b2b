import { useEffect, useState } from "react";

/** How long a wait reads: seconds, then minutes, then the time of day it ends. */
function waitText(seconds: number, endsAt: Date): string {
  if (seconds < 90) return `in ${seconds} s`;
  if (seconds < 3600) return `in ${Math.round(seconds / 60)} min`;
  return `at ${endsAt.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
}

interface Props {
  seconds: number | null | undefined;
  /** The answer that asked for the wait: a new one (even with the same seconds) starts over. */
  of: object;
}

/**
 * " You can try again in 12 s", counting down from when the server's answer was shown; put
 * after the sentence it completes. Nothing when the server named no wait.
 */
export function RetryCountdown({ seconds, of }: Props) {
  return seconds == null ? null : <Countdown seconds={seconds} of={of} />;
}

function Countdown({ seconds, of }: { seconds: number; of: object }) {
  const [deadline, setDeadline] = useState(() => Date.now() + seconds * 1000);
  const [left, setLeft] = useState(seconds);
  useEffect(() => {
    setDeadline(Date.now() + seconds * 1000);
    setLeft(seconds);
  }, [seconds, of]);
  useEffect(() => {
    if (left <= 0) return;
    const timer = window.setTimeout(() => setLeft(Math.max(0, Math.ceil((deadline - Date.now()) / 1000))), 1000);
    return () => window.clearTimeout(timer);
  }, [left, deadline]);
  return (
    <span className="retry-countdown" data-seconds-left={left}>
      {" "}
      {left > 0 ? `You can try again ${waitText(left, new Date(deadline))}.` : "You can try again now."}
    </span>
  );
}
