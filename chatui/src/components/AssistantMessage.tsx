import type { ChatMessage, Phase } from "../chatState";
import { CopyButton } from "./CopyButton";
import { RetryIcon } from "./Icons";
import { Markdown } from "./Markdown";
import { useLongWait } from "./useElapsed";

interface Props {
  message: ChatMessage;
  /** The reply being written right now (it shows the phase). */
  live: boolean;
  phase: Phase;
  canRegenerate: boolean;
  onRegenerate: () => void;
}

/** The line under a reply: why it is not a normal, finished reply. */
function statusNote(message: ChatMessage, live: boolean, phase: Phase): string | null {
  if (live && phase === "reconnecting") return "Connection lost. Reconnecting…";
  if (live && phase === "stopping") return "Stopping…";
  switch (message.status) {
    case "cancelled":
      return "Stopped.";
    case "interrupted":
      return "This reply was interrupted. Regenerate it to get a full answer.";
    case "error":
      // assistant answers "still starting (loading its model)" until the local model is in memory
      if (message.errorText && /loading its model|still starting|not ready/i.test(message.errorText))
        return "The model is still loading. Retry in a moment: the first start can take a minute.";
      return message.errorText ?? "The reply failed.";
    default:
      return null;
  }
}

export function AssistantMessage({ message, live, phase, canRegenerate, onRegenerate }: Props) {
  const waiting = live && message.content === "";
  const longWait = useLongWait(waiting && (phase === "waiting" || phase === "streaming"), 4000);
  const note = statusNote(message, live, phase);
  const streaming = live && message.status === "streaming";
  const failed = !live && (message.status === "error" || message.status === "interrupted");
  return (
    <article className={`msg msg-assistant${streaming ? " is-streaming" : ""}`} aria-label="Assistant" data-status={message.status}>
      <div className="avatar" aria-hidden="true">
        AI
      </div>
      <div className="msg-body">
        {waiting ? (
          <div className="typing" role="status">
            <span className="dots" aria-hidden="true">
              <i />
              <i />
              <i />
            </span>
            <span className={longWait ? "typing-text" : "visually-hidden"}>
              {longWait ? "Waking up the model… the first reply can take a little while." : "The assistant is writing…"}
            </span>
          </div>
        ) : (
          // aria-busy holds screen-reader announcements until the reply is complete
          <div className="reply" aria-busy={streaming}>
            <Markdown text={message.content} />
          </div>
        )}
        {note ? (
          <div className={`msg-note note-${failed ? "error" : "info"}`} role={message.status === "error" ? "alert" : undefined}>
            <span>{note}</span>
            {failed && canRegenerate ? (
              <button type="button" className="button small" onClick={onRegenerate}>
                <RetryIcon /> Retry
              </button>
            ) : null}
          </div>
        ) : null}
        {!live && (message.content !== "" || (canRegenerate && !failed)) ? (
          <div className="msg-actions">
            {message.content !== "" ? <CopyButton text={message.content} label="Copy reply" /> : null}
            {canRegenerate && !failed ? (
              <button type="button" className="icon-button" aria-label="Regenerate reply" title="Regenerate" onClick={onRegenerate}>
                <RetryIcon />
              </button>
            ) : null}
          </div>
        ) : null}
      </div>
    </article>
  );
}
