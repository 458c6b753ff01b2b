import { forwardRef, useImperativeHandle, useLayoutEffect, useRef, type KeyboardEvent } from "react";
import { SendIcon, StopIcon } from "./Icons";

interface Props {
  draft: string;
  onDraft: (text: string) => void;
  busy: boolean;
  stopping: boolean;
  onSend: (text: string) => void;
  onStop: () => void;
}

export interface ComposerHandle {
  focus: () => void;
}

const MAX_HEIGHT_PX = 240;

export const Composer = forwardRef<ComposerHandle, Props>(function Composer({ draft, onDraft, busy, stopping, onSend, onStop }, ref) {
  const area = useRef<HTMLTextAreaElement>(null);
  useImperativeHandle(ref, () => ({ focus: () => area.current?.focus() }), []);

  // Grow with the text up to a limit. Set through the DOM (CSSOM), which a CSP without
  // 'unsafe-inline' allows, unlike a style attribute in markup.
  useLayoutEffect(() => {
    const el = area.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, MAX_HEIGHT_PX)}px`;
  }, [draft]);

  const canSend = !busy && draft.trim() !== "";
  const submit = () => {
    if (!canSend) return;
    onSend(draft.trim());
  };
  const keys = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    // Enter sends, Shift+Enter is a new line; Enter that confirms an IME composition is neither.
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      submit();
    }
  };

  return (
    <form
      className="composer"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <label htmlFor="composer-input" className="visually-hidden">
        Message
      </label>
      <div className="composer-box">
        <textarea
          id="composer-input"
          ref={area}
          rows={1}
          value={draft}
          placeholder="Message the assistant"
          aria-describedby="composer-hint"
          onChange={(e) => onDraft(e.target.value)}
          onKeyDown={keys}
        />
        {busy ? (
          <button type="button" className="send stop" onClick={onStop} disabled={stopping} aria-label={stopping ? "Stopping" : "Stop generating"} title="Stop">
            <StopIcon />
          </button>
        ) : (
          <button type="submit" className="send" disabled={!canSend} aria-label="Send message" title="Send">
            <SendIcon />
          </button>
        )}
      </div>
      <p id="composer-hint" className="composer-hint">
        Enter to send, Shift+Enter for a new line. Replies can be wrong: check what matters.
      </p>
    </form>
  );
});
