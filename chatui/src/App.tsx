import { useCallback, useEffect, useRef, useState } from "react";
import { isBusy, replyWaitingForModel } from "./chatState";
import { Composer, type ComposerHandle } from "./components/Composer";
import { EmptyState } from "./components/EmptyState";
import { ErrorNotice } from "./components/ErrorNotice";
import { ChatMenu } from "./components/ChatMenu";
import { MenuIcon, PlusIcon } from "./components/Icons";
import { Sidebar } from "./components/Sidebar";
import { ModelBanner } from "./components/ModelBanner";
import { ModelPicker } from "./components/ModelPicker";
import { Thread } from "./components/Thread";
import { pathOf, sessionIdFromPath } from "./routes";
import { useChat } from "./useChat";
import { useModelStatus } from "./useModelStatus";
import { modelLabel, useModels } from "./useModels";
import { useSessions } from "./useSessions";

/** When the chat list is read again after a chat's first reply, for its generated title. */
const TITLE_CHECKS_MS = [1500, 4000, 10000, 30000];

export function App() {
  const sessions = useSessions();
  const catalogue = useModels();
  const modelName = useCallback((id: string | null | undefined) => modelLabel(catalogue, id), [catalogue]);
  const [draft, setDraft] = useState("");
  const [sidebarOpen, setSidebarOpen] = useState(false);
  const composer = useRef<ComposerHandle>(null);
  const { state: chat, controller } = useChat({ restoreDraft: setDraft, onListChanged: sessions.refresh });
  const busy = isBusy(chat);
  const waiting = replyWaitingForModel(chat);
  const model = useModelStatus(waiting?.state ?? null, waiting?.key ?? null);
  const autoRetry = waiting?.autoRetry === true;
  useEffect(() => {
    if (autoRetry && model.reply === "ready") controller.modelReady();
  }, [autoRetry, model.reply, controller]);

  // The address bar and the open chat follow each other (reload, back and forward work);
  // /c/<id>#m-<message id> opens the chat at that message.
  useEffect(() => {
    void controller.open(sessionIdFromPath(window.location.pathname), messageIdFromHash(window.location.hash) ?? undefined);
    const onPop = () => void controller.open(sessionIdFromPath(window.location.pathname));
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, [controller]);
  useEffect(() => {
    const path = pathOf(chat.sessionId);
    if (window.location.pathname !== path) window.history.pushState(null, "", path);
  }, [chat.sessionId]);
  useEffect(() => {
    document.title = chat.name ? `${chat.name} · Chat` : "Chat";
  }, [chat.name]);
  // A chat's title is written in the background after its first reply: the list is read
  // again a few times then, and the header follows the list.
  const firstReply = chat.messages.length === 2 && chat.phase === "idle" && chat.messages[1]?.status === "complete" ? chat.messages[1].id : null;
  const refreshSessions = sessions.refresh;
  useEffect(() => {
    if (!firstReply) return;
    const timers = TITLE_CHECKS_MS.map((ms) => setTimeout(() => void refreshSessions(), ms));
    return () => timers.forEach(clearTimeout);
  }, [firstReply, refreshSessions]);
  // Only a change of the list's name while the same chat stays open: a list read before a
  // chat was titled must not undo the title its own history brought.
  const listedName = sessions.sessions.find((s) => s.session_id === chat.sessionId)?.name;
  const listed = useRef<{ sessionId: string | null; name: string | undefined }>({ sessionId: null, name: undefined });
  useEffect(() => {
    const before = listed.current;
    listed.current = { sessionId: chat.sessionId, name: listedName };
    if (!listedName || before.sessionId !== chat.sessionId || before.name === listedName) return;
    if (listedName !== chat.name) controller.renamed(listedName);
  }, [listedName, chat.sessionId, chat.name, controller]);

  const select = useCallback(
    (id: string | null) => {
      setSidebarOpen(false);
      setDraft("");
      void controller.open(id);
      composer.current?.focus();
    },
    [controller],
  );

  const send = useCallback(
    (text: string) => {
      setDraft("");
      void controller.send(text);
    },
    [controller],
  );

  const continueReply = useCallback((messageId: string) => void controller.continueReply(messageId), [controller]);
  const loadOlder = useCallback(() => void controller.loadOlder(), [controller]);
  const loadNewer = useCallback(() => void controller.loadNewer(), [controller]);
  const showNewest = useCallback(() => void controller.showNewest(), [controller]);

  // A search result opens its chat at the message that matched (also /c/<id>#m-<message id>).
  const [target, setTarget] = useState<{ sessionId: string | null; messageId: string } | null>(() => {
    const messageId = messageIdFromHash(window.location.hash);
    return messageId ? { sessionId: sessionIdFromPath(window.location.pathname), messageId } : null;
  });
  // A message already shown is scrolled to; any other opens its chat at the page around it
  // (its branch shown first when it is on another one), however far back it is.
  const shown = chat.messages;
  const openAt = useCallback(
    (id: string, messageId: string | null) => {
      setSidebarOpen(false);
      setTarget(messageId ? { sessionId: id, messageId } : null);
      if (id === chat.sessionId && (!messageId || shown.some((m) => m.id === messageId))) return;
      if (id !== chat.sessionId) setDraft("");
      void controller.open(id, messageId ?? undefined);
    },
    [controller, chat.sessionId, shown],
  );
  // The chat opened at the message; should it still not be there (gone since the search),
  // it is opened at it once more, then the newest page stays.
  const reopenedAt = useRef<string | null>(null);
  useEffect(() => {
    if (!target || chat.phase !== "idle" || chat.sessionId !== target.sessionId) return;
    const node = document.querySelector(`[data-message-id="${CSS.escape(target.messageId)}"]`);
    if (node instanceof HTMLElement) {
      node.scrollIntoView({ block: "center" });
      node.classList.add("is-found");
      setTarget(null);
    } else if (reopenedAt.current !== target.messageId) {
      reopenedAt.current = target.messageId;
      void controller.open(target.sessionId, target.messageId);
    } else setTarget(null);
  }, [target, chat.phase, chat.sessionId, chat.messages, controller]);

  const rename = useCallback(
    (id: string, name: string) => {
      void sessions.rename(id, name);
      if (id === chat.sessionId) controller.renamed(name);
    },
    [sessions, controller, chat.sessionId],
  );

  const remove = useCallback(
    (id: string) => {
      void sessions.remove(id).then(() => {
        if (id === chat.sessionId) select(null);
      });
    },
    [sessions, chat.sessionId, select],
  );

  useEffect(() => {
    composer.current?.focus();
  }, []);
  // The phone drawer closes with Escape, as a dialog would.
  useEffect(() => {
    if (!sidebarOpen) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") setSidebarOpen(false);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [sidebarOpen]);

  return (
    <div className="app">
      <a className="skip-link" href="#composer-input">
        Skip to the message box
      </a>
      <Sidebar
        sessions={sessions.sessions}
        modelName={modelName}
        loaded={sessions.loaded}
        error={sessions.error}
        activeId={chat.sessionId}
        open={sidebarOpen}
        onClose={() => setSidebarOpen(false)}
        onNew={() => select(null)}
        onSelect={select}
        onRename={rename}
        onDelete={remove}
        onOpenAt={openAt}
        onImported={() => void sessions.refresh()}
      />
      {sidebarOpen ? <div className="scrim" onClick={() => setSidebarOpen(false)} aria-hidden="true" /> : null}
      <main className="main">
        <header className="topbar">
          <button type="button" className="icon-button only-narrow" aria-label="Open the chat list" aria-expanded={sidebarOpen} onClick={() => setSidebarOpen(true)}>
            <MenuIcon />
          </button>
          <h1 className="chat-title">{chat.name || "New chat"}</h1>
          <ModelPicker catalogue={catalogue} value={chat.model} disabled={busy} onChange={(m) => void controller.setModel(m)} />
          {chat.sessionId ? <ChatMenu key={chat.sessionId} sessionId={chat.sessionId} /> : null}
          <button type="button" className="icon-button only-narrow" aria-label="New chat" onClick={() => select(null)}>
            <PlusIcon />
          </button>
        </header>
        {model.banner ? <ModelBanner state={model.banner} /> : null}
        <Thread
          chat={chat}
          onEdit={(id, content) => void controller.edit(id, content)}
          onRegenerate={(id) => void controller.regenerate(id)}
          onRegenerateWith={(id, m) => void controller.regenerate(id, m)}
          catalogue={catalogue}
          onSwitch={(id, index) => void controller.showSibling(id, index)}
          onContinue={continueReply}
          onLoadOlder={loadOlder}
          onLoadNewer={loadNewer}
          onShowNewest={showNewest}
          empty={<EmptyState onPick={send} />}
          model={model.reply}
          autoRetry={autoRetry}
        />
        <div className="bottom">
          {chat.error ? <ErrorNotice error={chat.error} onRetry={(r) => controller.retry(r)} onDismiss={() => controller.dismissError()} /> : null}
          <Composer
            ref={composer}
            draft={draft}
            onDraft={setDraft}
            busy={busy}
            stopping={chat.phase === "stopping"}
            onSend={send}
            onStop={() => controller.stop()}
          />
        </div>
        <p className="visually-hidden" role="status" aria-live="polite">
          {announce(chat.phase)}
        </p>
      </main>
    </div>
  );
}

function messageIdFromHash(hash: string): string | null {
  const m = /^#m-(.+)$/.exec(hash);
  return m?.[1] ? decodeURIComponent(m[1]) : null;
}

/** What a screen reader hears as a reply progresses (the reply text itself is in the log). */
function announce(phase: string): string {
  switch (phase) {
    case "waiting":
      return "The assistant is writing a reply.";
    case "reconnecting":
      return "Connection lost, reconnecting.";
    case "stopping":
      return "Stopping the reply.";
    default:
      return "";
  }
}
