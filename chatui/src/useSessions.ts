/** The browser's chats for the sidebar, newest first as conversation lists them (owned through its HttpOnly cookie). */

import { useCallback, useEffect, useRef, useState } from "react";
import * as api from "./api";
import type { SessionSummary } from "./api";

export interface SessionsState {
  sessions: SessionSummary[];
  loaded: boolean;
  error: string | null;
}

export function useSessions() {
  const [state, setState] = useState<SessionsState>({ sessions: [], loaded: false, error: null });
  // Only the newest refresh may write: an older, slower answer must not win.
  const latest = useRef(0);

  const refresh = useCallback(async () => {
    const mine = ++latest.current;
    try {
      const sessions = await api.listSessions();
      if (mine === latest.current) setState({ sessions, loaded: true, error: null });
    } catch (e) {
      if (mine !== latest.current) return;
      // A browser without the cookie yet has no chats: that is not an error to show.
      const expired = e instanceof api.ApiError && e.kind === "expired";
      const error = expired ? null : e instanceof Error ? e.message : "Could not load your chats.";
      setState((s) => ({ sessions: expired ? [] : s.sessions, loaded: true, error }));
    }
  }, []);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  const rename = useCallback(
    async (id: string, name: string) => {
      setState((s) => ({ ...s, sessions: s.sessions.map((x) => (x.session_id === id ? { ...x, name } : x)) }));
      try {
        await api.renameSession(id, name);
      } finally {
        void refresh();
      }
    },
    [refresh],
  );

  const remove = useCallback(
    async (id: string) => {
      await api.deleteSession(id);
      setState((s) => ({ ...s, sessions: s.sessions.filter((x) => x.session_id !== id) }));
      void refresh();
    },
    [refresh],
  );

  return { ...state, refresh, rename, remove };
}
