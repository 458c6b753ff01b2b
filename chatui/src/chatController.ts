/**
 * Drives the open chat: talks to the API and feeds what happens into chatReducer.
 *
 * A reply's generation belongs to the server, not to our connection, so a dropped
 * connection is resumed (Last-Event-ID, with backoff) and a page that opens a chat whose
 * reply is still being written follows it from the start. Closing the connection (switching
 * chats) never cancels a reply; only Stop does.
 */

import * as realApi from "./api";
import { ApiError, type ErrorKind, type SessionDetail, type StreamEvent } from "./api";
import {
  chatReducer,
  initialChat,
  isBusy,
  replyWaitingForModel,
  type ChatAction,
  type ChatError,
  type ChatState,
  type Retry,
} from "./chatState";
import { newClientId, titleFrom } from "./ids";

type Opener = (signal: AbortSignal) => Promise<AsyncGenerator<StreamEvent>>;

/** The part of the API the controller uses: the real module, or a fake in unit tests. */
export type ChatApi = Pick<
  typeof realApi,
  "getSession" | "createSession" | "sendMessage" | "regenerate" | "editMessage" | "continueReply" | "resumeReply" | "cancelReply" | "showSibling" | "openBranchOf" | "setSessionModel"
>;

export interface ChatOptions {
  /** A refused message goes back into the composer, so nothing typed is lost. */
  restoreDraft: (content: string) => void;
  /** The chat list changed (a chat was created, or a reply finished). */
  onListChanged: () => void;
}

/** Waits between resume attempts; after the last one the person is asked to retry. */
export const RESUME_DELAYS_MS = [300, 1000, 2000, 4000, 8000, 15000];

/** Messages per history page: the newest when a chat opens, then older ones on scrolling up. */
export const HISTORY_PAGE = 50;

const WHAT_TO_DO: Record<ErrorKind, string> = {
  expired: "Start a new chat to continue.",
  too_long: "Shorten the message and send it again.",
  rate_limited: "Wait a moment, then try again.",
  storage_full: "Start a new chat, or delete chats you no longer need.",
  // 409s differ (a reply is being written, a reply that cannot be continued): the server's
  // sentence says which and what to do.
  busy: "",
  unavailable: "Try again in a moment.",
  network: "Check your connection, then try again.",
  invalid: "",
  other: "Try again.",
};

/**
 * What the person sees of a failure. A refused message goes back into the composer (see
 * `follow`) rather than into a Send again button whenever sending it as is would only be
 * refused again: too long, invalid, or over a limit that has to be waited out or made
 * room for. The countdown of `retryAfterSeconds` replaces the vague "wait a moment".
 */
export function toChatError(e: unknown, retry: Retry | null): ChatError {
  const err = e instanceof ApiError ? e : new ApiError("other", "Something went wrong.", 0);
  const retryAfterSeconds = err.retryAfterSeconds;
  // With a Retry-After the countdown says when; the server's sentence says what to resend.
  const waitShown = retryAfterSeconds !== null && (err.kind === "rate_limited" || err.kind === "unavailable");
  const hint = waitShown ? "" : WHAT_TO_DO[err.kind];
  // The server's words for a missing or foreign session address API clients (tokens,
  // headers); a person only needs to know the chat is gone.
  const said = err.kind === "expired" ? "This chat has expired or is not available in this browser." : err.message;
  const message = hint ? `${said} ${hint}` : said;
  const kept = err.kind === "too_long" || err.kind === "invalid" || err.kind === "busy" || err.kind === "storage_full";
  const noRetry = kept || (err.kind === "rate_limited" && retry?.type === "send");
  const action: Retry | null = err.kind === "expired" ? { type: "new-chat" } : noRetry ? null : retry;
  return { kind: err.kind, message, retry: action, retryAfterSeconds };
}

const lost = () => new ApiError("network", "The connection was lost.", 0);

/**
 * Owns the chat state (a small store React subscribes to), so async code always reads the
 * state as it is now: how much of a reply we have decides where a resume starts. Every fact
 * about the chat (which one is open, the reply being written, whether Stop was pressed) is
 * in that state and nowhere else; the controller keeps only its open connection.
 */
export class ChatController {
  private state: ChatState = initialChat;
  private readonly listeners = new Set<() => void>();
  private connection: AbortController | null = null;

  constructor(
    private readonly options: ChatOptions,
    private readonly api: ChatApi = realApi,
    private readonly wait: (ms: number, signal: AbortSignal) => Promise<void> = sleep,
  ) {}

  readonly getState = (): ChatState => this.state;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** The chat was renamed from the list. */
  renamed(name: string): void {
    this.dispatch({ type: "renamed", name });
  }

  dismissError(): void {
    this.dispatch({ type: "dismissError" });
  }

  private dispatch(action: ChatAction): void {
    // A chat that is gone is gone from the list too.
    if (action.type === "failed" && action.error.kind === "expired") this.options.onListChanged();
    const next = chatReducer(this.state, action);
    if (next === this.state) return;
    this.state = next;
    for (const listener of this.listeners) listener();
  }

  /** Close the connection (the reply, if any, goes on server-side). */
  close(): void {
    this.connection?.abort();
    this.connection = null;
  }

  /** Open a chat at its newest messages, or at message `at` (a search result): the page
   * around it, its branch shown first when it is on another one. */
  async open(sessionId: string | null, at?: string): Promise<void> {
    const signal = this.connect();
    this.dispatch({ type: "open", sessionId });
    if (sessionId) await this.recover(sessionId, signal, at);
  }

  /** Show the newest messages (the chat was opened further back). */
  async showNewest(): Promise<void> {
    const sid = this.state.sessionId;
    if (sid) await this.recover(sid, this.connect());
  }

  async send(content: string, clientMessageId: string = newClientId()): Promise<void> {
    // A message goes after the newest one: the page must show it first.
    if (this.state.hasNewer) await this.showNewest();
    const retry: Retry = { type: "send", content, clientMessageId };
    this.dispatch({ type: "send", content, clientMessageId });
    let sessionId = this.state.sessionId;
    if (!sessionId) {
      const signal = this.connect();
      try {
        const created = await this.api.createSession(titleFrom(content), this.state.model);
        if (signal.aborted) return;
        sessionId = created.session_id;
        this.dispatch({ type: "created", sessionId, name: created.name, model: created.model ?? null });
        this.options.onListChanged();
      } catch (e) {
        if (!signal.aborted) this.dispatch({ type: "failed", error: toChatError(e, retry) });
        return;
      }
    }
    const sid = sessionId;
    await this.follow(sid, (signal) => this.api.sendMessage(sid, content, clientMessageId, signal), retry);
  }

  /**
   * A new version of reply `messageId` (none: the last); the old one stays on its branch.
   * `model`: another model for this version only ("regenerate with…"); none: the chat's.
   */
  async regenerate(messageId?: string, model?: string | null): Promise<void> {
    const sid = this.state.sessionId;
    if (!sid) return;
    this.dispatch({ type: "regenerate", messageId });
    await this.follow(sid, (signal) => this.api.regenerate(sid, signal, messageId, model), { type: "regenerate" });
  }

  /** The chat's model from its next reply on (a new chat: the one it will be created with). */
  async setModel(model: string): Promise<void> {
    const sid = this.state.sessionId;
    const before = this.state.model;
    this.dispatch({ type: "model", model });
    if (!sid) return;
    try {
      await this.api.setSessionModel(sid, model);
      this.options.onListChanged();
    } catch (e) {
      if (this.state.sessionId !== sid) return;
      this.dispatch({ type: "model", model: before });
      this.dispatch({ type: "failed", error: toChatError(e, null) });
    }
  }

  /** Show version `siblingIndex` (1-based) of a message, and the branch below it. */
  async showSibling(messageId: string, siblingIndex: number): Promise<void> {
    await this.switchPath((sid) => this.api.showSibling(sid, messageId, siblingIndex));
  }

  private async switchPath(load: (sessionId: string) => Promise<SessionDetail>): Promise<void> {
    const sid = this.state.sessionId;
    if (!sid || isBusy(this.state)) return;
    const signal = this.connect();
    try {
      const session = await load(sid);
      if (!signal.aborted) this.dispatch({ type: "loaded", session });
    } catch (e) {
      if (!signal.aborted) this.dispatch({ type: "failed", error: toChatError(e, null) });
    }
  }

  async edit(messageId: string, content: string): Promise<void> {
    const sid = this.state.sessionId;
    if (!sid) return;
    this.dispatch({ type: "edit", messageId, content });
    await this.follow(sid, (signal) => this.api.editMessage(sid, messageId, content, signal), { type: "regenerate" });
  }

  /** Ask the model to go on from a reply that stopped short (length limit, stopped, interrupted). */
  async continueReply(messageId: string): Promise<void> {
    const sid = this.state.sessionId;
    if (!sid) return;
    this.dispatch({ type: "continue", messageId });
    await this.follow(sid, (signal) => this.api.continueReply(sid, messageId, signal), { type: "continue", messageId });
  }

  /** Read the page of history just older than the first message shown. */
  async loadOlder(): Promise<void> {
    const sid = this.state.sessionId;
    const first = this.state.messages[0];
    if (!sid || !first || !this.state.hasMore || this.state.older === "loading") return;
    this.dispatch({ type: "olderLoading" });
    try {
      const page = await this.api.getSession(sid, { limit: HISTORY_PAGE, before: first.id });
      this.dispatch({ type: "olderLoaded", before: first.id, session: page });
    } catch {
      // The chat itself stays usable; the line at the top offers to try again.
      this.dispatch({ type: "olderFailed", sessionId: sid });
    }
  }

  /** Read the page of history just newer than the last message shown. */
  async loadNewer(): Promise<void> {
    const sid = this.state.sessionId;
    const last = this.state.messages[this.state.messages.length - 1];
    if (!sid || !last || !this.state.hasNewer || this.state.newer === "loading") return;
    this.dispatch({ type: "newerLoading" });
    try {
      const page = await this.api.getSession(sid, { limit: HISTORY_PAGE, after: last.id });
      this.dispatch({ type: "newerLoaded", after: last.id, session: page });
    } catch {
      this.dispatch({ type: "newerFailed", sessionId: sid });
    }
  }

  stop(): void {
    const { sessionId, replyId, started } = this.state;
    this.dispatch({ type: "stop" });
    // Before the server has begun the reply there is nothing to cancel yet: its start event
    // cancels it (see `follow`).
    if (sessionId && replyId && started) this.cancel(sessionId, replyId);
  }

  /**
   * The model is ready again: a message this page sent, refused because the model was
   * loading or unreachable, is sent again once by itself (its reply's note says so).
   */
  modelReady(): void {
    const waiting = replyWaitingForModel(this.state);
    if (!waiting?.autoRetry) return;
    this.dispatch({ type: "autoRetried", userId: waiting.userId });
    void this.regenerate();
  }

  retry(action: Retry): void {
    switch (action.type) {
      case "send":
        void this.send(action.content, action.clientMessageId);
        break;
      case "regenerate":
        void this.regenerate();
        break;
      case "continue":
        void this.continueReply(action.messageId);
        break;
      case "resume":
        void this.open(this.state.sessionId);
        break;
      case "new-chat":
        void this.open(null);
        break;
    }
  }

  private connect(): AbortSignal {
    this.close();
    const ac = new AbortController();
    this.connection = ac;
    return ac.signal;
  }

  private cancel(sessionId: string, replyId: string): void {
    // A failed cancel leaves the reply running: it ends on its own.
    this.api.cancelReply(sessionId, replyId).catch(() => undefined);
  }

  /** Re-read the chat from the server and follow a reply that is still being written. */
  private async recover(sessionId: string, signal: AbortSignal, at?: string): Promise<void> {
    try {
      const session = await this.firstPage(sessionId, at);
      if (signal.aborted) return;
      this.dispatch({ type: "loaded", session });
      const last = session.messages[session.messages.length - 1];
      if (last?.role === "assistant" && last.status === "streaming") {
        await this.follow(sessionId, null, { type: "resume" }, last.id);
      }
    } catch (e) {
      if (!signal.aborted) this.dispatch({ type: "failed", error: toChatError(e, { type: "resume" }) });
    }
  }

  /**
   * The page a chat opens at: the newest, or the one around message `at`. A message on a
   * branch not shown (409) has its branch shown first; one the chat no longer holds (404),
   * or a branch that cannot be switched now, leaves the newest page.
   */
  private async firstPage(sessionId: string, at?: string): Promise<SessionDetail> {
    const newest = { limit: HISTORY_PAGE };
    if (!at) return this.api.getSession(sessionId, newest);
    try {
      return await this.api.getSession(sessionId, { ...newest, around: at });
    } catch (e) {
      if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 409)) throw e;
      if (e.status === 409) {
        try {
          await this.api.openBranchOf(sessionId, at);
          return await this.api.getSession(sessionId, { ...newest, around: at });
        } catch {
          // Shown from the newest page instead, as a chat opens.
        }
      }
      return this.api.getSession(sessionId, newest);
    }
  }

  /**
   * Read a reply stream to its end. `opener` starts it (send, regenerate, edit); with
   * `opener` null the reply `resumeId` is followed from what the page already has.
   */
  private async follow(sessionId: string, opener: Opener | null, retry: Retry, resumeId: string | null = null): Promise<void> {
    const signal = this.connect();
    let resuming = opener === null;
    let open: Opener = opener ?? this.resumer(sessionId, resumeId ?? "");
    if (resumeId) this.dispatch({ type: "resuming", messageId: resumeId });
    for (let attempt = 0; ; ) {
      let received = false;
      try {
        for await (const event of await open(signal)) {
          if (signal.aborted) return;
          received = true;
          attempt = 0;
          const wasStarted = this.state.started;
          this.dispatch({ type: "event", event });
          if (event.type === "start" && !wasStarted && this.state.stopRequested) this.cancel(sessionId, event.messageId);
          if (event.type === "done" || event.type === "error") {
            this.options.onListChanged();
            return;
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        const refused = e instanceof ApiError && e.kind !== "network";
        if (refused && resuming) {
          // The reply can no longer be resumed (finished long ago, or gone): the history has it.
          await this.recover(sessionId, signal);
          return;
        }
        if (!received && !resuming) {
          // Nothing happened yet: the message was refused, or never reached the server.
          const error = toChatError(e, retry);
          this.dispatch({ type: "failed", error });
          // The text goes back to the composer unless the notice offers to send it again.
          if (refused && retry.type === "send" && error.retry?.type !== "send") this.options.restoreDraft(retry.content);
          return;
        }
      }
      if (signal.aborted) return;
      // The connection ended before the reply did.
      const replyId = this.state.started ? this.state.replyId : null;
      const delay = RESUME_DELAYS_MS[attempt];
      if (!replyId || delay === undefined) {
        // Cut before the reply had an id, a resend with the same client_message_id is
        // answered from what the server stored, never stored twice.
        this.dispatch({ type: "failed", error: toChatError(lost(), replyId ? { type: "resume" } : retry) });
        return;
      }
      attempt++;
      this.dispatch({ type: "connectionLost" });
      await this.wait(delay, signal);
      if (signal.aborted) return;
      this.dispatch({ type: "resuming", messageId: replyId });
      open = this.resumer(sessionId, replyId);
      resuming = true;
    }
  }

  /** Resume after the characters we have, read when the request is made. */
  private resumer(sessionId: string, replyId: string): Opener {
    return (signal) => this.api.resumeReply(sessionId, replyId, String(this.state.offset), signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
