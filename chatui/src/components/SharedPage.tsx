/**
 * A share link's page (/s/<id>): the snapshot, read-only, with the same sanitized markdown
 * as the chat. No chat list, no composer, nothing of the viewer's own: reading sends no
 * cookie and sets none. "Continue this chat" copies it into the viewer's own chats.
 */

import { useEffect, useState } from "react";
import * as api from "../api";
import { pathOf } from "../routes";
import { ChatIcon } from "./Icons";
import { Markdown } from "./Markdown";

type Load = { state: "loading" } | { state: "ready"; chat: api.SharedChat } | { state: "failed"; message: string };

export function SharedPage({ shareId }: { shareId: string }) {
  const [load, setLoad] = useState<Load>({ state: "loading" });
  const [continuing, setContinuing] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    api.getShare(shareId).then(
      (chat) => live && setLoad({ state: "ready", chat }),
      (e: unknown) => live && setLoad({ state: "failed", message: e instanceof Error ? e.message : "This shared chat could not be loaded." }),
    );
    return () => {
      live = false;
    };
  }, [shareId]);

  useEffect(() => {
    document.title = load.state === "ready" ? `${load.chat.name} · Shared chat` : "Shared chat";
  }, [load]);

  const continueChat = () => {
    setContinuing(true);
    setError(null);
    api.continueShare(shareId).then(
      (created) => window.location.assign(pathOf(created.session_id)),
      (e: unknown) => {
        setContinuing(false);
        setError(e instanceof Error ? e.message : "The chat could not be copied.");
      },
    );
  };

  return (
    <div className="shared-page">
      <header className="shared-head">
        <span className="brand">
          <span className="brand-mark" aria-hidden="true">
            <ChatIcon />
          </span>
          Shared chat
        </span>
        {load.state === "ready" ? (
          <button type="button" className="button primary" onClick={continueChat} disabled={continuing}>
            Continue this chat
          </button>
        ) : null}
      </header>
      <main className="shared-main">
        {load.state === "loading" ? (
          <p role="status">Loading the shared chat…</p>
        ) : load.state === "failed" ? (
          <p className="shared-gone" role="alert">
            {load.message}
          </p>
        ) : (
          <>
            <h1 className="chat-title">{load.chat.name}</h1>
            <p className="shared-note">A copy of this chat as it was on {new Date(load.chat.created_at).toLocaleString()}. Read-only.</p>
            {error ? (
              <p className="shared-gone" role="alert">
                {error}
              </p>
            ) : null}
            <div className="messages" role="log" aria-label="Shared conversation">
              {load.chat.messages.map((m) =>
                m.role === "user" ? (
                  <article key={m.id} className="msg msg-user" aria-label="User">
                    <div className="bubble">{m.content}</div>
                  </article>
                ) : (
                  <article key={m.id} className="msg msg-assistant" aria-label="Assistant" data-status={m.status}>
                    <div className="avatar" aria-hidden="true">
                      AI
                    </div>
                    <div className="msg-body">
                      <div className="reply">
                        <Markdown text={m.content} />
                      </div>
                    </div>
                  </article>
                ),
              )}
            </div>
          </>
        )}
      </main>
    </div>
  );
}
