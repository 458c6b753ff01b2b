import { useCallback, useLayoutEffect, useRef, useState, type KeyboardEvent, type ReactNode, type WheelEvent } from "react";
import type { Catalogue, ModelState } from "../api";
import { isBusy, type ChatState, type OlderState } from "../chatState";
import { AssistantMessage } from "./AssistantMessage";
import { DownIcon } from "./Icons";
import { UserMessage } from "./UserMessage";

interface Props {
  chat: ChatState;
  onEdit: (messageId: string, content: string) => void;
  /** A new version of this reply. */
  onRegenerate: (messageId: string) => void;
  /** A new version of this reply, by another model (that version only). */
  onRegenerateWith: (messageId: string, model: string) => void;
  /** Show the message's sibling at this position instead. */
  onSwitch?: (messageId: string, siblingIndex: number) => void;
  onContinue: (messageId: string) => void;
  /** Read the page of history before the first message shown. */
  onLoadOlder: () => void;
  /** Read the page of history after the last message shown (the chat opened further back). */
  onLoadNewer?: () => void;
  /** Show the newest messages at once (the chat opened further back). */
  onShowNewest?: () => void;
  empty: ReactNode;
  /** The model's state for the last reply when it failed waiting for the model. */
  model?: ModelState | null;
  autoRetry?: boolean;
  /** The models, for the name under each reply and "regenerate with…". */
  catalogue: Catalogue;
}

/** How close to the bottom still counts as "following the reply". */
const FOLLOW_SLACK_PX = 48;
/** How close to the top asks for older messages: early enough that they are usually there in time. */
const OLDER_SLACK_PX = 200;

export function Thread({
  chat,
  onEdit,
  onRegenerate,
  onRegenerateWith,
  onSwitch = () => undefined,
  onContinue,
  onLoadOlder,
  onLoadNewer = () => undefined,
  onShowNewest = () => undefined,
  empty,
  model = null,
  autoRetry = false,
  catalogue,
}: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  // Follow the reply unless the person scrolled up to read; scrolling back down resumes it.
  const following = useRef(true);
  const [showJump, setShowJump] = useState(false);
  const busy = isBusy(chat);
  // After a failure the person asks again with the button, not each scroll event.
  const canLoadOlder = chat.hasMore && chat.older === "idle";
  const canLoadNewer = chat.hasNewer && chat.newer === "idle";

  const lastTop = useRef(0);
  const onScroll = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight <= FOLLOW_SLACK_PX;
    const movedDown = el.scrollTop > lastTop.current;
    lastTop.current = el.scrollTop;
    // Following stops when the view leaves the bottom, and starts again only when the
    // person comes back down to it (a late event from our own scroll does not count).
    if (!atBottom) following.current = false;
    else if (movedDown) following.current = true;
    setShowJump(!following.current);
    if (el.scrollTop <= OLDER_SLACK_PX && !movedDown && canLoadOlder) onLoadOlder();
    const nearBottom = el.scrollHeight - el.scrollTop - el.clientHeight <= OLDER_SLACK_PX;
    if (nearBottom && movedDown && canLoadNewer) onLoadNewer();
  }, [onLoadOlder, canLoadOlder, onLoadNewer, canLoadNewer]);

  // A scroll event can arrive after the next word already pulled the view back down, so
  // the person's intent is read from the input itself: wheel or keys going up.
  const stopFollowing = useCallback(() => {
    const el = scroller.current;
    if (!el || el.scrollHeight <= el.clientHeight) return;
    following.current = false;
    setShowJump(true);
  }, []);
  const onWheel = useCallback((e: WheelEvent<HTMLDivElement>) => {
    if (e.deltaY < 0) stopFollowing();
  }, [stopFollowing]);
  const onKeyDown = useCallback((e: KeyboardEvent<HTMLDivElement>) => {
    if (e.key === "PageUp" || e.key === "ArrowUp" || e.key === "Home") stopFollowing();
  }, [stopFollowing]);

  const toBottom = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    el.scrollTop = el.scrollHeight;
    lastTop.current = el.scrollTop;
    following.current = true;
    setShowJump(false);
  }, []);
  // Below the messages shown there may be newer ones not read yet: the newest page first.
  const toLatest = useCallback(() => {
    if (chat.hasNewer) {
      following.current = true;
      onShowNewest();
    } else toBottom();
  }, [chat.hasNewer, onShowNewest, toBottom]);

  // A new chat, or a new message from the person, always brings the bottom into view; a
  // newer page read while scrolling down is neither, and the view stays where it is.
  const lastKey = chat.messages[chat.messages.length - 1]?.key;
  const windowEnd = useRef<{ sessionId: string | null; lastKey?: string; paging: boolean }>({ sessionId: null, paging: false });
  useLayoutEffect(() => {
    const before = windowEnd.current;
    windowEnd.current = { sessionId: chat.sessionId, lastKey, paging: chat.newer === "loading" };
    if (before.sessionId === chat.sessionId && (before.lastKey === lastKey || before.paging)) return;
    following.current = true;
  }, [chat.sessionId, lastKey, chat.newer]);

  // Older messages arrive above what the person is reading: the view keeps the message it
  // had first in the same place on screen rather than jumping by the height added.
  const list = useRef<HTMLDivElement>(null);
  const anchor = useRef<{ key: string; top: number } | null>(null);
  useLayoutEffect(() => {
    const el = scroller.current;
    const before = anchor.current;
    const first = chat.messages[0];
    if (el && before && first && first.key !== before.key) {
      const i = chat.messages.findIndex((m) => m.key === before.key);
      const node = i > 0 ? list.current?.children[i] : undefined;
      if (node instanceof HTMLElement) el.scrollTop += node.offsetTop - before.top;
      lastTop.current = el.scrollTop;
    }
    const node = list.current?.firstElementChild;
    anchor.current = first && node instanceof HTMLElement ? { key: first.key, top: node.offsetTop } : null;
  }, [chat.messages]);

  // The bottom of a page with newer messages beyond it is not the latest: nothing to follow.
  useLayoutEffect(() => {
    if (following.current && !chat.hasNewer) toBottom();
  }, [chat.messages, chat.hasNewer, toBottom]);

  // A first page too short to scroll cannot be scrolled to its top: ask for more at once.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el || el.scrollHeight > el.clientHeight) return;
    if (canLoadOlder) onLoadOlder();
    else if (canLoadNewer) onLoadNewer();
  }, [chat.messages, canLoadOlder, onLoadOlder, canLoadNewer, onLoadNewer]);

  const last = chat.messages[chat.messages.length - 1];

  return (
    <div className="thread-wrap">
      {/* biome-ignore lint/a11y/noStaticElementInteractions: the handlers only watch the person scroll, to stop following the reply */}
      <div className="thread" ref={scroller} onScroll={onScroll} onWheel={onWheel} onKeyDown={onKeyDown} onTouchMove={stopFollowing}>
        {chat.phase === "loading" ? (
          <div className="thread-loading" role="status">
            Loading chat…
          </div>
        ) : chat.messages.length === 0 ? (
          empty
        ) : (
          <>
            <PageLine state={chat.older} which="Older" onRetry={onLoadOlder} />
            <div className="messages" ref={list} role="log" aria-live="polite" aria-label="Conversation">
              {chat.messages.map((m) =>
                m.role === "user" ? (
                  <UserMessage
                    key={m.key}
                    message={m}
                    canEdit={!busy && m.id !== ""}
                    onEdit={(content) => onEdit(m.id, content)}
                    onSwitch={(index) => onSwitch(m.id, index)}
                  />
                ) : (
                  <AssistantMessage
                    key={m.key}
                    message={m}
                    live={busy && m === last}
                    phase={chat.phase}
                    canRegenerate={!busy && m === last && !chat.hasNewer}
                    onRegenerate={() => onRegenerate(m.id)}
                    onRegenerateWith={(model) => onRegenerateWith(m.id, model)}
                    catalogue={catalogue}
                    onContinue={() => onContinue(m.id)}
                    canSwitch={!busy && m.id !== ""}
                    onSwitch={(index) => onSwitch(m.id, index)}
                    model={m === last ? model : null}
                    autoRetry={m === last && autoRetry}
                  />
                ),
              )}
            </div>
            <PageLine state={chat.newer} which="Newer" onRetry={onLoadNewer} />
          </>
        )}
      </div>
      {(showJump || chat.hasNewer) && chat.messages.length > 0 ? (
        <button type="button" className="jump" onClick={toLatest} aria-label="Scroll to the latest message">
          <DownIcon />
        </button>
      ) : null}
    </div>
  );
}

/** A page of history being read above or below the messages shown, or failed to be. */
function PageLine({ state, which, onRetry }: { state: OlderState; which: "Older" | "Newer"; onRetry: () => void }) {
  if (state === "loading") {
    return (
      <p className="older-line" role="status">
        {`Loading ${which.toLowerCase()} messages…`}
      </p>
    );
  }
  if (state !== "failed") return null;
  return (
    <p className="older-line">
      {which} messages could not be loaded.{" "}
      <button type="button" className="button small" onClick={onRetry}>
        Try again
      </button>
    </p>
  );
}
