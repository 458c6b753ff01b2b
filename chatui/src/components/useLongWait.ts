import { useEffect, useState } from "react";

/** Whether `active` has been true for at least `ms`: to say more when a wait gets long. */
export function useLongWait(active: boolean, ms: number): boolean {
  const [long, setLong] = useState(false);
  useEffect(() => {
    setLong(false);
    if (!active) return;
    const timer = window.setTimeout(() => setLong(true), ms);
    return () => window.clearTimeout(timer);
  }, [active, ms]);
  return long;
}
