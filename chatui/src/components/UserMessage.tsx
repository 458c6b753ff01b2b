import { useEffect, useRef, useState, type KeyboardEvent } from "react";
import type { ChatMessage } from "../chatState";
import { CopyButton } from "./CopyButton";
import { EditIcon } from "./Icons";
import { SiblingSwitch } from "./SiblingSwitch";

interface Props {
  message: ChatMessage;
  /** Nothing is being written: the message may be edited (a new version) or another version shown. */
  canEdit: boolean;
  onEdit: (content: string) => void;
  onSwitch: (siblingIndex: number) => void;
}

export function UserMessage({ message, canEdit, onEdit, onSwitch }: Props) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(message.content);
  const area = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    if (editing) {
      area.current?.focus();
      area.current?.select();
    }
  }, [editing]);

  const save = () => {
    const content = draft.trim();
    if (!content) return;
    setEditing(false);
    if (content !== message.content) onEdit(content);
  };
  const keys = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Escape") setEditing(false);
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      save();
    }
  };

  if (editing) {
    return (
      <article className="msg msg-user editing" aria-label="You (editing)">
        <form
          className="edit-form"
          onSubmit={(e) => {
            e.preventDefault();
            save();
          }}
        >
          <label className="visually-hidden" htmlFor={`edit-${message.key}`}>
            Edit your message
          </label>
          <textarea id={`edit-${message.key}`} ref={area} value={draft} rows={3} onChange={(e) => setDraft(e.target.value)} onKeyDown={keys} />
          <div className="edit-buttons">
            <button type="button" className="button ghost" onClick={() => setEditing(false)}>
              Cancel
            </button>
            <button type="submit" className="button primary" disabled={!draft.trim()}>
              Save and send
            </button>
          </div>
        </form>
      </article>
    );
  }

  return (
    <article className={`msg msg-user${message.status === "pending" ? " is-pending" : ""}`} aria-label="You">
      <div className="bubble">{message.content}</div>
      <SiblingSwitch message={message} disabled={!canEdit} onSwitch={onSwitch} />
      <div className="msg-actions">
        <CopyButton text={message.content} label="Copy message" />
        {canEdit ? (
          <button
            type="button"
            className="icon-button"
            aria-label="Edit message"
            title="Edit"
            onClick={() => {
              setDraft(message.content);
              setEditing(true);
            }}
          >
            <EditIcon />
          </button>
        ) : null}
      </div>
    </article>
  );
}
