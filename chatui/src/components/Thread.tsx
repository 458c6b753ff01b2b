import { useCallback, useLayoutEffect, useRef, useState, type ReactNode } from "react";
import { isBusy, type ChatState } from "../chatState";
import { AssistantMessage } from "./AssistantMessage";
import { DownIcon } from "./Icons";
import { UserMessage } from "./UserMessage";

interface Props {
  chat: ChatState;
  onEdit: (messageId: string, content: string) => void;
  onRegenerate: () => void;
  empty: ReactNode;
}

/** How close to the bottom still counts as "following the reply". */
const FOLLOW_SLACK_PX = 48;

export function Thread({ chat, onEdit, onRegenerate, empty }: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  // Follow the reply unless the person scrolled up to read; scrolling back down resumes it.
  const following = useRef(true);
  const [showJump, setShowJump] = useState(false);
  const busy = isBusy(chat);

  const onScroll = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight <= FOLLOW_SLACK_PX;
    following.current = atBottom;
    setShowJump(!atBottom);
  }, []);

  const toBottom = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    el.scrollTop = el.scrollHeight;
    following.current = true;
    setShowJump(false);
  }, []);

  // A new chat, or a new message from the person, always brings the bottom into view.
  const lastKey = chat.messages[chat.messages.length - 1]?.key;
  useLayoutEffect(() => {
    following.current = true;
  }, [chat.sessionId, lastKey]);

  useLayoutEffect(() => {
    if (following.current) toBottom();
  }, [chat.messages, toBottom]);

  const lastUser = findLast(chat.messages, (m) => m.role === "user");
  const last = chat.messages[chat.messages.length - 1];

  return (
    <div className="thread-wrap">
      <div className="thread" ref={scroller} onScroll={onScroll}>
        {chat.phase === "loading" ? (
          <div className="thread-loading" role="status">
            Loading chat…
          </div>
        ) : chat.messages.length === 0 ? (
          empty
        ) : (
          <div className="messages" role="log" aria-live="polite" aria-label="Conversation">
            {chat.messages.map((m) =>
              m.role === "user" ? (
                <UserMessage
                  key={m.key}
                  message={m}
                  canEdit={!busy && m === lastUser && m.id !== ""}
                  onEdit={(content) => onEdit(m.id, content)}
                />
              ) : (
                <AssistantMessage
                  key={m.key}
                  message={m}
                  live={busy && m === last}
                  phase={chat.phase}
                  canRegenerate={!busy && m === last}
                  onRegenerate={onRegenerate}
                />
              ),
            )}
          </div>
        )}
      </div>
      {showJump && chat.messages.length > 0 ? (
        <button type="button" className="jump" onClick={toBottom} aria-label="Scroll to the latest message">
          <DownIcon />
        </button>
      ) : null}
    </div>
  );
}

function findLast<T>(list: T[], test: (t: T) => boolean): T | undefined {
  for (let i = list.length - 1; i >= 0; i--) {
    const item = list[i];
    if (item !== undefined && test(item)) return item;
  }
  return undefined;
}
