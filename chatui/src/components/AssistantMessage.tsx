import { CONTINUABLE, type Catalogue, type ModelState, type Usage } from "../api";
import { modelLabel } from "../useModels";
import type { ChatMessage, Phase } from "../chatState";
import { modelStateOf } from "../readiness";
import { CopyButton } from "./CopyButton";
import { RetryCountdown } from "./RetryCountdown";
import { RetryIcon } from "./Icons";
import { Markdown } from "./Markdown";
import { SiblingSwitch } from "./SiblingSwitch";
import { useLongWait } from "./useLongWait";

interface Props {
  message: ChatMessage;
  /** The reply being written right now (it shows the phase). */
  live: boolean;
  phase: Phase;
  /** The last reply, nothing being written: it may be regenerated or continued. */
  canRegenerate: boolean;
  onRegenerate: () => void;
  /** Regenerate with another model (that reply only). */
  onRegenerateWith?: (model: string) => void;
  /** The models: the name under the reply, and the choices of "regenerate with…". */
  catalogue?: Catalogue;
  onContinue: () => void;
  /** Show another version of this reply; `canSwitch` while nothing is being written. */
  canSwitch?: boolean;
  onSwitch?: (siblingIndex: number) => void;
  /** The model's state now, for the last reply when it failed waiting for the model. */
  model?: ModelState | null;
  /** The page sends the message again by itself once the model is ready. */
  autoRetry?: boolean;
}

const WAITING: Record<Exclude<ModelState, "ready">, string> = {
  loading: "The model is loading…",
  unreachable: "The model service is unreachable…",
};

/** The note of a reply that failed because the model was not there yet. */
function waitingNote(model: ModelState, autoRetry: boolean): string {
  if (model === "ready") {
    return autoRetry ? "The model is ready. Sending your message again…" : "The model is ready now. Retry to get a reply.";
  }
  return autoRetry
    ? `${WAITING[model]} Your message is saved and will be answered as soon as the model is ready; you can leave this page open.`
    : `${WAITING[model]} This page keeps checking and says here when the model is ready; then retry.`;
}

/** The line under a reply: why it is not a normal, finished reply. */
function statusNote(message: ChatMessage, live: boolean, phase: Phase, model: ModelState | null, autoRetry: boolean): string | null {
  if (live && phase === "reconnecting") return "Connection lost. Reconnecting…";
  if (live && phase === "stopping") return "Stopping…";
  if (live && phase === "waiting" && message.content !== "") return "Continuing…";
  switch (message.status) {
    case "length":
      return "Cut at the length limit.";
    case "cancelled":
      return "Stopped.";
    case "interrupted":
      return "This reply was interrupted.";
    case "error":
      if (model && modelStateOf(message.errorCode)) return waitingNote(model, autoRetry);
      return message.errorText ?? "The reply failed.";
    default:
      return null;
  }
}

/** The reply's tokens, as the details line says them. */
export function usageText(usage: Usage): string {
  return `${usage.total_tokens} tokens (${usage.prompt_tokens} prompt, ${usage.completion_tokens} reply)`;
}

const NO_CATALOGUE: Catalogue = { models: [], default: null };

export function AssistantMessage({
  message,
  live,
  phase,
  canRegenerate,
  onRegenerate,
  onRegenerateWith,
  catalogue = NO_CATALOGUE,
  onContinue,
  canSwitch = false,
  onSwitch = () => undefined,
  model = null,
  autoRetry = false,
}: Props) {
  const waiting = live && message.content === "";
  const longWait = useLongWait(waiting && (phase === "waiting" || phase === "streaming"), 4000);
  const note = statusNote(message, live, phase, model, autoRetry);
  const streaming = live && message.status === "streaming";
  const failed = !live && (message.status === "error" || message.status === "interrupted");
  const canContinue = !live && canRegenerate && CONTINUABLE.has(message.status) && message.content !== "";
  // Waiting for the model is not a fault of this reply: said politely, not as an alert.
  const forModel = failed && model !== null && modelStateOf(message.errorCode) !== null;
  // "Try this with another model": offered wherever Regenerate or Retry is.
  const regenerateWith = canRegenerate && catalogue.models.length > 1 ? onRegenerateWith : undefined;
  return (
    <article className={`msg msg-assistant${streaming ? " is-streaming" : ""}`} aria-label="Assistant" data-status={message.status} data-message-id={message.id}>
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
            {message.queuePosition !== undefined ? (
              <span className="typing-text">Waiting for the model: {message.queuePosition ? `${message.queuePosition} ahead of you` : "you are next"}</span>
            ) : (
              <span className={longWait ? "typing-text" : "visually-hidden"}>
                {longWait ? "Waking up the model… the first reply can take a little while." : "The assistant is writing…"}
              </span>
            )}
          </div>
        ) : (
          // aria-busy holds screen-reader announcements until the reply is complete
          <div className="reply" aria-busy={streaming}>
            <Markdown text={message.content} />
          </div>
        )}
        {note ? (
          <div
            className={`msg-note note-${failed && !forModel ? "error" : "info"}`}
            role={forModel ? "status" : message.status === "error" ? "alert" : undefined}
            data-model={forModel ? model : undefined}
          >
            <span>
              {note}
              {live ? null : <RetryCountdown seconds={message.retryAfterSeconds} of={message} />}
            </span>
            <span className="note-actions">
              {canContinue ? (
                <button type="button" className="button small" onClick={onContinue}>
                  Continue
                </button>
              ) : null}
              {failed && canRegenerate ? (
                <button type="button" className="button small" onClick={onRegenerate}>
                  <RetryIcon /> Retry
                </button>
              ) : null}
            </span>
          </div>
        ) : null}
        {!live && message.model ? (
          <p className="msg-meta" data-testid="reply-meta" title={message.usage ? usageText(message.usage) : "The model reported no token count."}>
            <span className="msg-model">{modelLabel(catalogue, message.model)}</span>
            {message.usage ? <span className="msg-usage"> · {usageText(message.usage)}</span> : null}
          </p>
        ) : null}
        {!live && (message.content !== "" || (canRegenerate && !failed) || regenerateWith || (message.sibling_count ?? 1) > 1) ? (
          <div className="msg-actions">
            <SiblingSwitch message={message} disabled={!canSwitch} onSwitch={onSwitch} />
            {message.content !== "" ? <CopyButton text={message.content} label="Copy reply" /> : null}
            {canRegenerate && !failed ? (
              <button type="button" className="icon-button" aria-label="Regenerate reply" title="Regenerate" onClick={onRegenerate}>
                <RetryIcon />
              </button>
            ) : null}
            {regenerateWith ? (
              <select
                className="regenerate-with"
                aria-label="Regenerate with another model"
                value=""
                onChange={(e) => {
                  if (e.target.value) regenerateWith(e.target.value);
                }}
              >
                <option value="">Regenerate with…</option>
                {catalogue.models.map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.ready ? m.display_name : `${m.display_name} (not ready)`}
                  </option>
                ))}
              </select>
            ) : null}
          </div>
        ) : null}
      </div>
    </article>
  );
}
