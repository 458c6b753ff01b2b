/** The open chat's menu: share links, and exports as Markdown or JSON. */

import { useCallback, useEffect, useState } from "react";
import * as api from "../api";
import { CopyButton } from "./CopyButton";

/** Link lifetimes offered; null: the longest the server keeps a link (SHARE_MAX_TTL). */
const LIFETIMES: { label: string; seconds: number | null }[] = [
  { label: "1 day", seconds: 24 * 3600 },
  { label: "7 days", seconds: 7 * 24 * 3600 },
  { label: "As long as allowed", seconds: null },
];

export function ChatMenu({ sessionId }: { sessionId: string }) {
  const [sharing, setSharing] = useState(false);
  return (
    <div className="chat-menu">
      <details className="menu">
        <summary className="button small" aria-label="Chat menu">
          Share or export
        </summary>
        <div className="menu-items" role="menu">
          <button type="button" role="menuitem" className="menu-item" onClick={() => setSharing((s) => !s)}>
            Share link…
          </button>
          <a role="menuitem" className="menu-item" href={api.exportUrl(sessionId, "md")} download>
            Export as Markdown
          </a>
          <a role="menuitem" className="menu-item" href={api.exportUrl(sessionId, "json")} download>
            Export as JSON
          </a>
        </div>
      </details>
      {sharing ? <SharePanel sessionId={sessionId} onClose={() => setSharing(false)} /> : null}
    </div>
  );
}

function SharePanel({ sessionId, onClose }: { sessionId: string; onClose: () => void }) {
  const [links, setLinks] = useState<api.ShareLink[]>([]);
  const [lifetime, setLifetime] = useState(0);
  const [error, setError] = useState<string | null>(null);

  const refresh = useCallback(() => {
    api.listShares(sessionId).then(setLinks, (e: unknown) => setError(e instanceof Error ? e.message : String(e)));
  }, [sessionId]);
  useEffect(refresh, [refresh]);

  const create = () => {
    setError(null);
    api.createShare(sessionId, LIFETIMES[lifetime]?.seconds ?? null).then(refresh, (e: unknown) => setError(e instanceof Error ? e.message : String(e)));
  };
  const revoke = (shareId: string) => {
    api.revokeShare(sessionId, shareId).then(refresh, (e: unknown) => setError(e instanceof Error ? e.message : String(e)));
  };

  return (
    <section className="share-panel" aria-label="Share links">
      <p className="share-help">Anyone with a link sees this chat as it is now (not your other chats, not later messages), until the link expires or you revoke it.</p>
      <div className="share-create">
        <label>
          Expires after{" "}
          <select value={lifetime} onChange={(e) => setLifetime(Number(e.target.value))}>
            {LIFETIMES.map((l, i) => (
              <option key={l.label} value={i}>
                {l.label}
              </option>
            ))}
          </select>
        </label>
        <button type="button" className="button primary small" onClick={create}>
          Create link
        </button>
        <button type="button" className="button ghost small" onClick={onClose}>
          Close
        </button>
      </div>
      {error ? <p className="share-error" role="alert">{error}</p> : null}
      <ul className="share-links">
        {links.map((l) => {
          const url = `${window.location.origin}${l.path}`;
          return (
            <li key={l.share_id} className="share-link">
              <a href={l.path} target="_blank" rel="noopener noreferrer">
                {url}
              </a>
              <span className="share-expiry">until {new Date(l.expires_at).toLocaleDateString()}</span>
              <CopyButton text={url} label="Copy link" />
              <button type="button" className="button danger small" onClick={() => revoke(l.share_id)}>
                Revoke
              </button>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
