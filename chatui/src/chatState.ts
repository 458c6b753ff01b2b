/**
 * The state of the open chat and every way it changes, as a pure reducer.
 *
 * All the rules that make streaming robust live here, so they are unit-tested without a
 * browser: a resumed stream never duplicates text, Stop keeps the partial reply, and
 * failures land on the message they belong to.
 *
 * Conversation numbers a delta's `id:` with the count of reply characters (code points)
 * written up to its end, and resumes after `Last-Event-ID: n` with the text after n
 * characters. So the page keeps `offset`, the characters it has, and takes from each delta
 * only what lies beyond it: a replay that overlaps (or starts over) adds nothing twice.
 */

import type { ErrorKind, Message, ModelState, SessionDetail, StreamEvent } from "./api";
import { modelStateOf } from "./readiness";

export interface ChatMessage extends Message {
  /** Stable React key: survives the server assigning the real id. */
  key: string;
  /** Why this reply failed, shown inside the reply. */
  errorText?: string;
  /** The failure's code (conversation's `error` event, or the stored reply's `error`). */
  errorCode?: string;
  /** It failed while this page was following it (just sent), not in an earlier visit. */
  failedHere?: boolean;
  /** The server asked to wait this long before trying again (a limit was reached). */
  retryAfterSeconds?: number | null;
  /** Before its first text: how many requests wait before this reply for the model. */
  queuePosition?: number;
}

/** What the person can do about an error, offered as a button. */
export type Retry =
  | { type: "send"; content: string; clientMessageId: string }
  | { type: "regenerate"; messageId?: string }
  | { type: "continue"; messageId: string }
  | { type: "resume" }
  | { type: "new-chat" };

export interface ChatError {
  kind: ErrorKind;
  message: string;
  retry: Retry | null;
  /** Seconds to wait before trying again, when the server said. */
  retryAfterSeconds?: number | null;
}

/** Loading the history older than what the page shows (the page reads it newest first). */
export type OlderState = "idle" | "loading" | "failed";

export type Phase =
  | "idle"
  | "loading" // fetching the chat
  | "waiting" // request sent, no reply text yet
  | "streaming"
  | "stopping" // Stop pressed, waiting for the server to close the reply
  | "reconnecting"; // the connection dropped (or the page reloaded) mid-reply

export interface ChatState {
  sessionId: string | null;
  name: string;
  /** The chat's model (a new chat: the one picked for it); null: the service's default. */
  model: string | null;
  messages: ChatMessage[];
  phase: Phase;
  /** The reply being written (its server id; for Continue, known before the server begins). */
  replyId: string | null;
  /** The server has begun writing that reply (its start event, or found streaming): Stop
   * cancels it at once; before that, its start event does. */
  started: boolean;
  /** Characters (code points) of that reply we have: what a resume sends as Last-Event-ID. */
  offset: number;
  stopRequested: boolean;
  error: ChatError | null;
  /** Older messages exist on the server than the first one shown. */
  hasMore: boolean;
  older: OlderState;
  /** Newer messages exist on the server than the last one shown (the chat was opened at a
   * message further back: a search result). */
  hasNewer: boolean;
  newer: OlderState;
  /** The user message already sent again by itself once the model was ready (one try only). */
  autoRetried: string | null;
}

export type ChatAction =
  | { type: "open"; sessionId: string | null }
  | { type: "created"; sessionId: string; name: string; model: string | null }
  | { type: "loaded"; session: SessionDetail }
  | { type: "renamed"; name: string }
  | { type: "model"; model: string | null }
  | { type: "send"; content: string; clientMessageId: string }
  | { type: "regenerate"; messageId?: string }
  | { type: "edit"; messageId: string; content: string }
  | { type: "continue"; messageId: string }
  | { type: "olderLoading" }
  | { type: "olderLoaded"; before: string; session: SessionDetail }
  | { type: "olderFailed"; sessionId: string }
  | { type: "newerLoading" }
  | { type: "newerLoaded"; after: string; session: SessionDetail }
  | { type: "newerFailed"; sessionId: string }
  | { type: "event"; event: StreamEvent }
  | { type: "resuming"; messageId: string }
  | { type: "connectionLost" }
  | { type: "stop" }
  | { type: "failed"; error: ChatError }
  | { type: "dismissError" }
  | { type: "autoRetried"; userId: string };

export const initialChat: ChatState = {
  sessionId: null,
  name: "",
  model: null,
  messages: [],
  phase: "idle",
  replyId: null,
  started: false,
  offset: 0,
  stopRequested: false,
  error: null,
  hasMore: false,
  older: "idle",
  hasNewer: false,
  newer: "idle",
  autoRetried: null,
};

const PLACEHOLDER = "reply:";

function placeholder(key: string): ChatMessage {
  return { key: PLACEHOLDER + key, id: "", role: "assistant", content: "", status: "streaming" };
}

function withKey(m: Message): ChatMessage {
  return m.error ? { ...m, key: m.id, errorText: m.error.message, errorCode: m.error.code } : { ...m, key: m.id };
}

/** The index of the reply being written: the one with the server id, else the last assistant placeholder. */
function replyIndex(state: ChatState): number {
  if (state.replyId) {
    const i = state.messages.findIndex((m) => m.id === state.replyId);
    if (i !== -1) return i;
  }
  const last = state.messages.length - 1;
  const m = state.messages[last];
  return m && m.role === "assistant" && m.status === "streaming" ? last : -1;
}

function updateReply(state: ChatState, change: (m: ChatMessage) => ChatMessage): ChatMessage[] {
  const i = replyIndex(state);
  if (i === -1) return state.messages;
  return state.messages.map((m, j) => (j === i ? change(m) : m));
}

const streamReset = { replyId: null, started: false, offset: 0, stopRequested: false };

export function charCount(text: string): number {
  let n = 0;
  for (const _ of text) n++; // by code point, as the server counts (an emoji is one)
  return n;
}

/**
 * The part of a delta that lies beyond `have` characters, and the new count. A delta whose
 * id is not a number (another server) is taken whole.
 */
export function unseenText(text: string, id: string | null, have: number): { text: string; offset: number } {
  const chars = Array.from(text);
  if (id === null || !/^\d+$/.test(id)) return { text, offset: have + chars.length };
  const end = Number(id);
  if (end <= have) return { text: "", offset: have };
  const start = end - chars.length;
  return { text: start < have ? chars.slice(have - start).join("") : text, offset: end };
}

function startReply(state: ChatState, messages: ChatMessage[], key: string, versionOf?: Message): ChatState {
  const reply = versionOf ? { ...placeholder(key), ...newVersion(versionOf) } : placeholder(key);
  return { ...state, ...streamReset, messages: [...messages, reply], phase: "waiting", error: null };
}

/** The place of a new version of `m` (an edit, a regeneration): the last of one more. */
function newVersion(m: Message): Pick<Message, "sibling_index" | "sibling_count"> {
  const count = (m.sibling_count ?? 1) + 1;
  return { sibling_index: count, sibling_count: count };
}

/**
 * After a failure: a reply that had started (it has an id, so the message before it was
 * stored) keeps its text and is marked interrupted; otherwise what the server never
 * confirmed (a pending message, an empty placeholder) is dropped.
 */
function settleAfterFailure(messages: ChatMessage[]): ChatMessage[] {
  const last = messages[messages.length - 1];
  if (last && last.role === "assistant" && last.id !== "" && last.status === "streaming") {
    return messages.map((m, i) =>
      i === messages.length - 1 ? { ...m, status: "interrupted" as const } : m.status === "pending" ? { ...m, status: "complete" as const } : m,
    );
  }
  return messages.filter((m) => m.status !== "pending" && !(m.id === "" && m.role === "assistant"));
}

function lastUserIndex(messages: ChatMessage[]): number {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]?.role === "user") return i;
  return -1;
}

function applyEvent(state: ChatState, event: StreamEvent): ChatState {
  // Events only matter while a reply is in flight: a late one from a closed stream is noise.
  if (!isBusy(state)) return state;
  const stopping = state.phase === "stopping";
  switch (event.type) {
    case "user": {
      const i = lastUserIndex(state.messages);
      if (i === -1) return state;
      const messages = state.messages.map((m, j) =>
        j === i ? { ...m, ...event.message, key: m.key, status: "complete" as const } : m,
      );
      return { ...state, messages };
    }
    case "start": {
      const messages = updateReply(state, (m) => ({ ...m, id: event.messageId, status: "streaming" }));
      return { ...state, messages, replyId: event.messageId, started: true, phase: stopping ? "stopping" : "streaming" };
    }
    case "queued":
      return { ...state, messages: updateReply(state, (m) => ({ ...m, queuePosition: event.position })) };
    case "delta": {
      const { text, offset } = unseenText(event.text, event.id, state.offset);
      const phase = stopping ? "stopping" : "streaming";
      if (text === "") return { ...state, phase };
      const messages = updateReply(state, (m) => ({ ...m, content: m.content + text, status: "streaming" }));
      return { ...state, messages, offset, phase };
    }
    case "done": {
      const stored = event.message;
      const messages = updateReply(state, (m) => {
        // The event does not say which version the reply is: the page counted it.
        const place = m.sibling_count ? { sibling_index: m.sibling_index, sibling_count: m.sibling_count } : {};
        if (stored && stored.content !== "") return { ...stored, ...place, key: m.key, role: "assistant" };
        const status = stored?.status ?? (state.stopRequested ? "cancelled" : "complete");
        return { ...m, id: stored?.id || m.id, status: status === "streaming" ? "complete" : status };
      });
      return { ...state, ...streamReset, messages, phase: "idle" };
    }
    case "error": {
      const cancelled = event.code === "cancelled";
      const messages = updateReply(state, (m) =>
        cancelled
          ? { ...m, status: "cancelled" }
          : {
              ...m,
              status: "error",
              errorText: event.message,
              errorCode: event.code,
              failedHere: true,
              retryAfterSeconds: event.retryAfterSeconds,
            },
      );
      // The reply itself shows the failure and offers Retry: no second notice below it.
      return { ...state, ...streamReset, messages, phase: "idle", error: null };
    }
  }
}

export function chatReducer(state: ChatState, action: ChatAction): ChatState {
  switch (action.type) {
    case "open":
      return { ...initialChat, sessionId: action.sessionId, phase: action.sessionId ? "loading" : "idle" };
    case "created":
      return { ...state, sessionId: action.sessionId, name: action.name, model: action.model };
    case "renamed":
      return { ...state, name: action.name };
    case "model":
      return { ...state, model: action.model };
    case "loaded": {
      const messages = action.session.messages.map(withKey);
      const last = messages[messages.length - 1];
      const base = {
        ...initialChat,
        sessionId: action.session.session_id,
        name: action.session.name,
        model: action.session.model ?? null,
        messages,
        hasMore: action.session.has_more,
        hasNewer: action.session.has_newer === true,
      };
      if (last && last.role === "assistant" && last.status === "streaming") {
        // A reply still being written (page reloaded mid-reply): resume after what we have.
        return { ...base, replyId: last.id, started: true, offset: charCount(last.content), phase: "reconnecting" };
      }
      return base;
    }
    case "send": {
      const user: ChatMessage = {
        key: action.clientMessageId,
        id: "",
        role: "user",
        content: action.content,
        status: "pending",
      };
      return startReply(state, [...state.messages, user], action.clientMessageId);
    }
    case "regenerate": {
      // The reply asked for (else the last) and everything after it leave the path: the
      // server keeps them on their branch.
      const i = action.messageId ? state.messages.findIndex((m) => m.id === action.messageId) : state.messages.length - 1;
      const old = state.messages[i];
      const kept = old && old.role === "assistant" ? state.messages.slice(0, i) : state.messages;
      const versionOf = old && old.role === "assistant" ? old : undefined;
      return startReply(state, kept, `regen:${state.messages.length}:${old?.id ?? ""}`, versionOf);
    }
    case "edit": {
      const i = state.messages.findIndex((m) => m.id === action.messageId);
      const old = state.messages[i];
      if (!old) return state;
      // A new version of the message: the server answers with its id in the `user` event.
      const version: ChatMessage = { ...old, ...newVersion(old), id: "", content: action.content };
      const kept = [...state.messages.slice(0, i), version];
      // Whatever came after the edited message leaves the path: nothing newer is left to read.
      return { ...startReply(state, kept, `edit:${action.messageId}:${action.content.length}`), hasNewer: false, newer: "idle" };
    }
    case "continue": {
      const reply = state.messages.find((m) => m.id === action.messageId);
      if (!reply || isBusy(state)) return state;
      // The server numbers the continuation's deltas after the text already there.
      return { ...state, ...streamReset, replyId: reply.id, offset: charCount(reply.content), phase: "waiting", error: null };
    }
    case "olderLoading":
      return state.hasMore && state.older !== "loading" ? { ...state, older: "loading" } : state;
    case "olderLoaded": {
      // Another chat (or this one again, afresh) was opened meanwhile: this page no longer fits.
      if (action.session.session_id !== state.sessionId || state.messages[0]?.id !== action.before) return state;
      const shown = new Set(state.messages.map((m) => m.id));
      const older = action.session.messages.filter((m) => !shown.has(m.id)).map(withKey);
      return { ...state, messages: [...older, ...state.messages], hasMore: action.session.has_more, older: "idle" };
    }
    case "olderFailed":
      return action.sessionId === state.sessionId ? { ...state, older: "failed" } : state;
    case "newerLoading":
      return state.hasNewer && state.newer !== "loading" ? { ...state, newer: "loading" } : state;
    case "newerLoaded": {
      // Another chat (or this one again, afresh) was opened meanwhile: this page no longer fits.
      if (action.session.session_id !== state.sessionId || state.messages[state.messages.length - 1]?.id !== action.after) return state;
      const shown = new Set(state.messages.map((m) => m.id));
      const newer = action.session.messages.filter((m) => !shown.has(m.id)).map(withKey);
      return { ...state, messages: [...state.messages, ...newer], hasNewer: action.session.has_newer === true, newer: "idle" };
    }
    case "newerFailed":
      return action.sessionId === state.sessionId ? { ...state, newer: "failed" } : state;
    case "event":
      return applyEvent(state, action.event);
    case "resuming":
      return {
        ...state,
        replyId: action.messageId,
        started: true,
        phase: state.phase === "stopping" ? "stopping" : "reconnecting",
        error: null,
      };
    case "connectionLost":
      return { ...state, phase: state.phase === "idle" ? "idle" : "reconnecting" };
    case "stop":
      return { ...state, stopRequested: true, phase: "stopping" };
    case "failed":
      return { ...state, ...streamReset, messages: settleAfterFailure(state.messages), phase: "idle", error: action.error };
    case "dismissError":
      return { ...state, error: null };
    case "autoRetried":
      return { ...state, autoRetried: action.userId };
  }
}

/** Whether a reply is on its way (Stop is offered, sending is not). */
export function isBusy(state: ChatState): boolean {
  return state.phase === "waiting" || state.phase === "streaming" || state.phase === "stopping" || state.phase === "reconnecting";
}

/** The open chat's last reply, when it failed because the model was loading or unreachable. */
export interface WaitingForModel {
  state: ModelState;
  /** The failed reply's key: a new failure is a new wait. */
  key: string;
  /** The person's message it answered. */
  userId: string;
  /** It failed while this page followed it, and has not been sent again by itself yet. */
  autoRetry: boolean;
}

export function replyWaitingForModel(chat: ChatState): WaitingForModel | null {
  const last = chat.messages[chat.messages.length - 1];
  if (isBusy(chat) || !last || last.role !== "assistant" || last.status !== "error") return null;
  const state = modelStateOf(last.errorCode);
  if (state === null) return null;
  let userId = "";
  for (const m of chat.messages) if (m.role === "user") userId = m.id;
  return { state, key: last.key, userId, autoRetry: last.failedHere === true && userId !== chat.autoRetried };
}
