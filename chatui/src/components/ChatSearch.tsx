/** Search this browser's chats; a result opens its chat at the message that matched. */

import { useEffect, useState } from "react";
import * as api from "../api";
import { messagePath } from "../routes";

/** Typing pauses this long before a query is sent: one request per pause, not per key. */
const DEBOUNCE_MS = 250;

interface Props {
  query: string;
  onQuery: (q: string) => void;
  onOpen: (sessionId: string, messageId: string | null) => void;
}

export function SearchBox({ query, onQuery }: Pick<Props, "query" | "onQuery">) {
  return (
    <div className="chat-search">
      <label className="visually-hidden" htmlFor="chat-search-input">
        Search your chats
      </label>
      <input
        id="chat-search-input"
        type="search"
        placeholder="Search chats"
        value={query}
        maxLength={200}
        onChange={(e) => onQuery(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Escape") onQuery("");
        }}
      />
    </div>
  );
}

type Found = { state: "idle" } | { state: "searching" } | { state: "done"; results: api.SearchResult[] } | { state: "failed"; message: string };

export function SearchResults({ query, onOpen }: Pick<Props, "query" | "onOpen">) {
  const [found, setFound] = useState<Found>({ state: "idle" });
  useEffect(() => {
    const q = query.trim();
    if (!/[\p{L}\p{N}]/u.test(q)) {
      setFound({ state: "idle" });
      return;
    }
    const abort = new AbortController();
    setFound({ state: "searching" });
    const timer = window.setTimeout(() => {
      api.searchChats(q, abort.signal).then(
        (results) => setFound({ state: "done", results }),
        (e: unknown) => {
          if (e instanceof DOMException && e.name === "AbortError") return;
          setFound({ state: "failed", message: e instanceof Error ? e.message : "Search failed." });
        },
      );
    }, DEBOUNCE_MS);
    return () => {
      window.clearTimeout(timer);
      abort.abort();
    };
  }, [query]);

  if (found.state === "idle") return <p className="sidebar-note">Type a word to search.</p>;
  if (found.state === "searching") return <p className="sidebar-note" role="status">Searching…</p>;
  if (found.state === "failed") return <p className="sidebar-note" role="alert">{found.message}</p>;
  if (found.results.length === 0) return <p className="sidebar-note" role="status">No chat matches.</p>;
  return (
    <ul className="search-results" aria-label="Search results">
      {found.results.map((r) => (
        <li key={`${r.session_id}/${r.message_id ?? ""}`}>
          <a
            className="search-result"
            href={messagePath(r.session_id, r.message_id)}
            onClick={(e) => {
              if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
              e.preventDefault();
              onOpen(r.session_id, r.message_id);
            }}
          >
            <span className="search-title">{r.title || "New chat"}</span>
            <span className="search-snippet">
              {r.snippet.map((s, i) =>
                // biome-ignore lint/suspicious/noArrayIndexKey: a snippet's segments never reorder; their position is their identity
                s.hit ? <mark key={i}>{s.text}</mark> : <span key={i}>{s.text}</span>,
              )}
            </span>
          </a>
        </li>
      ))}
    </ul>
  );
}
