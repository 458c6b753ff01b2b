import { useEffect, useRef, useState, type KeyboardEvent } from "react";
import type { SessionSummary } from "../api";
import { pathOf } from "../routes";
import { SearchBox, SearchResults } from "./ChatSearch";
import { ChatIcon, CloseIcon, EditIcon, PlusIcon, TrashIcon } from "./Icons";
import { ImportExport } from "./ImportExport";

interface Props {
  sessions: SessionSummary[];
  /** Each chat's model as a person reads it (its display name). */
  modelName: (id: string | null | undefined) => string;
  loaded: boolean;
  error: string | null;
  activeId: string | null;
  open: boolean;
  onClose: () => void;
  onNew: () => void;
  onSelect: (id: string) => void;
  onRename: (id: string, name: string) => void;
  onDelete: (id: string) => void;
  /** Open a chat at a message (a search result; null: at its end). */
  onOpenAt: (id: string, messageId: string | null) => void;
  onImported: () => void;
}

export function Sidebar(props: Props) {
  const { sessions, loaded, error, activeId, open, onClose, onNew, onOpenAt, onImported } = props;
  const [query, setQuery] = useState("");
  return (
    <aside className={`sidebar${open ? " is-open" : ""}`} aria-label="Chats">
      <div className="sidebar-head">
        <span className="brand">
          <span className="brand-mark" aria-hidden="true">
            <ChatIcon />
          </span>
          Chat
        </span>
        <button type="button" className="icon-button only-narrow" aria-label="Close the chat list" onClick={onClose}>
          <CloseIcon />
        </button>
      </div>
      <button type="button" className="new-chat" onClick={onNew}>
        <PlusIcon /> New chat
      </button>
      <SearchBox query={query} onQuery={setQuery} />
      <nav className="chat-list" aria-label="Your chats">
        {query ? (
          <SearchResults query={query} onOpen={onOpenAt} />
        ) : (
          <>
            {error ? <p className="sidebar-note">{error}</p> : null}
            {loaded && !error && sessions.length === 0 ? <p className="sidebar-note">No chats yet.</p> : null}
            <ul>
              {sessions.map((s) => (
                <ChatItem key={s.session_id} session={s} active={s.session_id === activeId} {...props} />
              ))}
            </ul>
          </>
        )}
      </nav>
      <ImportExport onImported={onImported} />
      <p className="sidebar-foot">Chats belong to this browser and expire after a while unused.</p>
    </aside>
  );
}

function ChatItem({ session, active, onSelect, onRename, onDelete, modelName }: Props & { session: SessionSummary; active: boolean }) {
  const [mode, setMode] = useState<"view" | "rename" | "confirm">("view");
  const [name, setName] = useState(session.name);
  const input = useRef<HTMLInputElement>(null);
  const title = session.name || "New chat";

  useEffect(() => {
    if (mode === "rename") input.current?.select();
  }, [mode]);

  const save = () => {
    const next = name.trim();
    setMode("view");
    if (next && next !== session.name) onRename(session.session_id, next);
  };
  const keys = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === "Enter") save();
    if (e.key === "Escape") setMode("view");
  };

  if (mode === "rename") {
    return (
      <li className="chat-item is-editing">
        <label className="visually-hidden" htmlFor={`rename-${session.session_id}`}>
          Chat name
        </label>
        <input id={`rename-${session.session_id}`} ref={input} value={name} maxLength={120} onChange={(e) => setName(e.target.value)} onKeyDown={keys} onBlur={save} />
      </li>
    );
  }
  if (mode === "confirm") {
    return (
      // biome-ignore lint/a11y/useSemanticElements: a list item cannot be a fieldset
      <li className="chat-item is-confirming" role="group" aria-label={`Delete ${title}?`}>
        <span className="confirm-text">Delete “{title}”?</span>
        <span className="confirm-buttons">
          <button type="button" className="button danger small" onClick={() => onDelete(session.session_id)}>
            Delete
          </button>
          {/* biome-ignore lint/a11y/noAutofocus: the question just replaced the item under the person's focus; the safe answer takes it */}
          <button type="button" className="button ghost small" onClick={() => setMode("view")} autoFocus>
            Cancel
          </button>
        </span>
      </li>
    );
  }
  return (
    <li className={`chat-item${active ? " is-active" : ""}`}>
      <a
        href={pathOf(session.session_id)}
        aria-current={active ? "page" : undefined}
        aria-describedby={session.model ? `model-of-${session.session_id}` : undefined}
        onClick={(e) => {
          if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return; // new tab: let the browser do it
          e.preventDefault();
          onSelect(session.session_id);
        }}
      >
        <span className="chat-item-name">{title}</span>
        {/* Described, not named by it: the link's name stays the chat's. */}
        {session.model ? (
          <span className="chat-item-model" id={`model-of-${session.session_id}`} aria-hidden="true">
            {modelName(session.model)}
          </span>
        ) : null}
      </a>
      <span className="chat-item-actions">
        <button
          type="button"
          className="icon-button small"
          aria-label={`Rename ${title}`}
          title="Rename"
          onClick={() => {
            setName(session.name);
            setMode("rename");
          }}
        >
          <EditIcon />
        </button>
        <button type="button" className="icon-button small" aria-label={`Delete ${title}`} title="Delete" onClick={() => setMode("confirm")}>
          <TrashIcon />
        </button>
      </span>
    </li>
  );
}
