import type { ChatError, Retry } from "../chatState";
import { CloseIcon } from "./Icons";
import { RetryCountdown } from "./RetryCountdown";

const ACTION_LABEL: Record<Retry["type"], string> = {
  send: "Send again",
  regenerate: "Retry",
  continue: "Continue",
  resume: "Reconnect",
  "new-chat": "Start a new chat",
};

/** An error right above the composer, where the person is looking, with what to do. */
export function ErrorNotice({ error, onRetry, onDismiss }: { error: ChatError; onRetry: (r: Retry) => void; onDismiss: () => void }) {
  return (
    <div className={`error-notice kind-${error.kind}`} role="alert">
      <p>
        {error.message}
        <RetryCountdown seconds={error.retryAfterSeconds} of={error} />
      </p>
      <div className="error-actions">
        {error.retry ? (
          <button type="button" className="button primary" onClick={() => error.retry && onRetry(error.retry)}>
            {ACTION_LABEL[error.retry.type]}
          </button>
        ) : null}
        <button type="button" className="icon-button" aria-label="Dismiss" title="Dismiss" onClick={onDismiss}>
          <CloseIcon />
        </button>
      </div>
    </div>
  );
}
