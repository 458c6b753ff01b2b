/**
 * The conversation service's HTTP API, in one place.
 *
 * Field names and routes follow conversation/ (the source of truth); anything that has to
 * adapt to them lives here and nowhere else. The browser is identified by an HttpOnly
 * cookie that conversation sets on `POST /api/sessions`: the token in that response is
 * never kept, so no page script can read a credential.
 */

import type { components } from "./api.gen";
import { readSse } from "./sse";

/**
 * conversation's request and response bodies and reply events, generated from its OpenAPI
 * document: `.venv/bin/python scripts/gen_ui_types.py` after changing them there.
 */
type Wire = components["schemas"];

export type Role = Wire["SessionMessage"]["role"];
/**
 * `length`: the model stopped at its token limit (Continue asks for more). `pending` is the
 * page's own: a user message sent but not yet confirmed as stored.
 */
export type MessageStatus = Wire["SessionMessage"]["status"] | "pending";

/** Replies that stopped short of an answer: Continue asks the model to go on from their text. */
export const CONTINUABLE: ReadonlySet<MessageStatus> = new Set(["length", "cancelled", "interrupted"]);

/**
 * A message as the server stores it (`error`: why a reply failed, so a reload knows too), or
 * one the page shows before the server has it: `pending`, with no time yet.
 */
export interface Message extends Omit<Wire["SessionMessage"], "status" | "created_at"> {
  status: MessageStatus;
  created_at?: string;
}

/** What the page reads of a chat. */
export type SessionSummary = Pick<Wire["SessionSummary"], "session_id" | "name" | "model">;

/** A reply's tokens, as the model reported them. */
export type Usage = Wire["Usage"];

/** One model of the catalogue (`GET /api/models`): `ready` false when it is still loading
 * or its provider is unreachable (it can be chosen anyway). */
export type ModelInfo = Wire["ModelInfo"];

/** The models a chat may use, and the default. */
export type Catalogue = Wire["ModelCatalogue"];

/** One page of a chat's history: its newest messages, or those just before, just after or around a given one. */
export interface SessionDetail extends SessionSummary {
  /** Oldest first. */
  messages: Message[];
  /** Older messages exist than the first of `messages`. */
  has_more: boolean;
  /** Newer messages exist than the last of `messages` (a page read with `after` or `around`;
   * absent: none). */
  has_newer?: boolean;
}

/** Which page of history to read: `limit` messages ending just before `before`, starting just
 * after `after`, or holding `around` (at most one of them; none: the newest). */
export interface HistoryPage {
  limit: number;
  before?: string;
  after?: string;
  around?: string;
}

/** One event of a reply stream, already decoded. */
export type StreamEvent =
  | { type: "user"; id: string | null; message: Message }
  | { type: "start"; id: string | null; messageId: string }
  | { type: "queued"; id: string | null; position: number }
  | { type: "delta"; id: string | null; text: string }
  | { type: "done"; id: string | null; message: Message | null }
  | { type: "error"; id: string | null; code: string; message: string; retryAfterSeconds?: number | null };

/** What went wrong, sorted by what the person can do about it. */
export type ErrorKind =
  | "expired" // the chat is gone or no longer ours: start a new one
  | "too_long" // shorten the message
  | "rate_limited" // wait (Retry-After), then retry
  | "storage_full" // this chat or this browser holds as much as it may: make room
  | "busy" // the chat is in a state that refuses this now (a reply is being written, ...)
  | "unavailable" // assistant or conversation down: retry later
  | "network" // no answer at all: check the connection, retry
  | "invalid" // anything else the server refused
  | "other";

export class ApiError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly status: number,
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

const HEADERS = {
  // The CSRF guard: a cross-site form cannot set a custom header or a JSON content type.
  "X-Requested-With": "chatui",
  Accept: "application/json",
};

/** The server's machine-readable `code`s; anything else is sorted by status. */
const KIND_BY_CODE: Record<string, ErrorKind> = {
  not_found: "expired",
  too_large: "too_long",
  rate_limited: "rate_limited",
  storage_full: "storage_full",
  conflict: "busy",
  overloaded: "unavailable",
};

const KIND_BY_STATUS: Record<number, ErrorKind> = {
  400: "invalid",
  401: "expired",
  403: "expired",
  404: "expired",
  409: "busy",
  413: "too_long",
  422: "invalid",
  429: "rate_limited",
  502: "unavailable",
  503: "unavailable",
  504: "unavailable",
  507: "storage_full",
};

/** Decided by `code`, then status; never by the wording, which is the server's to change. */
export function kindOf(status: number, code: string): ErrorKind {
  return KIND_BY_CODE[code] ?? KIND_BY_STATUS[status] ?? "other";
}

/** Seconds from a `Retry-After` header or `retry_after` field; null when absent or an HTTP date. */
export function retryAfterOf(value: unknown): number | null {
  const n = typeof value === "number" ? value : typeof value === "string" && value.trim() !== "" ? Number(value) : NaN;
  return Number.isFinite(n) && n >= 0 ? Math.ceil(n) : null;
}

/**
 * The sentence and code of an error body: `{"detail", "code"}` from conversation and from
 * nginx alike, `detail` a string or FastAPI's validation list. Anything else (a proxy's HTML
 * page) gives the fallback.
 */
export function messageOf(body: unknown, fallback: string): { message: string; code: string } {
  if (typeof body !== "object" || body === null) return { message: fallback, code: "" };
  const b = body as { detail?: unknown; code?: unknown };
  const code = typeof b.code === "string" ? b.code : "";
  const detail = b.detail;
  if (typeof detail === "string") return { message: detail, code };
  if (Array.isArray(detail) && detail.length > 0) {
    const first = detail[0] as Partial<Wire["ValidationError"]>;
    if (typeof first.msg === "string") return { message: first.msg, code: String(first.type ?? code) };
  }
  return { message: fallback, code };
}

const FALLBACK: Record<number, string> = {
  401: "This chat has expired or belongs to another browser.",
  404: "This chat no longer exists: it may have expired.",
  409: "A reply is already being written in this chat. Wait for it to finish, or stop it.",
  413: "The message is too long.",
  429: "Too many requests.",
  507: "There is no room left to store this chat.",
  502: "The chat service is not reachable right now.",
  503: "The chat service is not available right now.",
  504: "The chat service took too long to answer.",
};

async function errorFrom(res: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    // nginx's own error pages are HTML: fall back to a message for the status
  }
  const fallback = FALLBACK[res.status] ?? `The server answered ${res.status}.`;
  const { message, code } = messageOf(body, fallback);
  return new ApiError(kindOf(res.status, code), message, res.status, retryAfterOf(res.headers.get("Retry-After")));
}

async function request(method: string, path: string, body?: unknown, extra?: HeadersInit, signal?: AbortSignal): Promise<Response> {
  const headers = new Headers(HEADERS);
  if (body !== undefined) headers.set("Content-Type", "application/json");
  if (extra) {
    for (const [k, v] of new Headers(extra)) headers.set(k, v);
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      signal: signal ?? null,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError("network", "The chat service could not be reached. Check your connection.", 0);
  }
  if (!res.ok) throw await errorFrom(res);
  return res;
}

async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await request(method, path, body);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

function toSummary({ session_id, name, model }: SessionSummary): SessionSummary {
  return { session_id, name, model: model ?? null };
}

const base = (id: string) => `/api/sessions/${encodeURIComponent(id)}`;

export async function listSessions(): Promise<SessionSummary[]> {
  const body = await json<Wire["SessionList"]>("GET", "/api/sessions");
  return body.sessions.map(toSummary);
}

/** `model`: the chat's model (null: the service's default). */
export async function createSession(name: string, model: string | null = null): Promise<SessionSummary> {
  // The response also holds a bearer token: deliberately dropped, the cookie is our credential.
  const request: Wire["CreateSession"] = model ? { name, model } : { name };
  return toSummary(await json<Wire["SessionCreated"]>("POST", "/api/sessions", request));
}

/** The models a chat may use, each with its readiness. */
export async function listModels(): Promise<Catalogue> {
  return json<Wire["ModelCatalogue"]>("GET", "/api/models");
}

/** The chat's model from its next reply on. */
export async function setSessionModel(id: string, model: string): Promise<SessionSummary> {
  const request: Wire["RenameSession"] = { model };
  return toSummary(await json<Wire["SessionSummary"]>("PATCH", base(id), request));
}

export async function getSession(id: string, page: HistoryPage): Promise<SessionDetail> {
  const query = new URLSearchParams({ limit: String(page.limit) });
  for (const cursor of ["before", "after", "around"] as const) {
    const id = page[cursor];
    if (id) query.set(cursor, id);
  }
  return toDetail(await json<Wire["SessionDetail"]>("GET", `${base(id)}?${query.toString()}`));
}

function toDetail(body: Wire["SessionDetail"]): SessionDetail {
  return { ...toSummary(body), messages: body.messages, has_more: body.has_more === true, has_newer: body.has_newer === true };
}

/** Show version `siblingIndex` (1-based) of a message; answers with the new active path's first page. */
export async function showSibling(id: string, messageId: string, siblingIndex: number): Promise<SessionDetail> {
  return setActive(id, messageId, { sibling_index: siblingIndex });
}

/** Show the branch a message is on, wherever it is in the tree; answers like `showSibling`. */
export async function openBranchOf(id: string, messageId: string): Promise<SessionDetail> {
  return setActive(id, messageId, {});
}

async function setActive(id: string, messageId: string, request: Wire["SwitchBranch"]): Promise<SessionDetail> {
  const path = `${base(id)}/messages/${encodeURIComponent(messageId)}/active`;
  return toDetail(await json<Wire["SessionDetail"]>("PATCH", path, request));
}

export async function renameSession(id: string, name: string): Promise<void> {
  const request: Wire["RenameSession"] = { name };
  await json<unknown>("PATCH", base(id), request);
}

export async function deleteSession(id: string): Promise<void> {
  await json<unknown>("DELETE", base(id));
}

export async function cancelReply(id: string, messageId: string): Promise<void> {
  await json<unknown>("POST", `${base(id)}/messages/${encodeURIComponent(messageId)}/cancel`);
}

/** Decode one SSE event of a reply stream; unknown events (future additions) give null. */
export function toStreamEvent(event: string, data: string, id: string | null): StreamEvent | null {
  let d: unknown;
  try {
    d = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof d !== "object" || d === null) return null;
  switch (event) {
    case "user":
      return { type: "user", id, message: d as Wire["Message"] };
    case "start":
      return { type: "start", id, messageId: (d as Wire["StartEvent"]).message_id };
    case "queued":
      return { type: "queued", id, position: (d as Wire["QueuedEvent"]).position };
    case "delta":
      return { type: "delta", id, text: (d as Wire["DeltaEvent"]).text };
    case "done":
      return { type: "done", id, message: d as Wire["DoneEvent"] };
    case "error": {
      // `retry_after`: what conversation's WebSocket error frame adds for a limit.
      const e = d as Wire["ErrorEvent"] & { retry_after?: unknown };
      return { type: "error", id, code: e.code, message: e.message, retryAfterSeconds: retryAfterOf(e.retry_after) };
    }
    default:
      return null;
  }
}

async function* events(res: Response): AsyncGenerator<StreamEvent> {
  if (!res.body) return;
  for await (const e of readSse(res.body)) {
    const decoded = toStreamEvent(e.event, e.data, e.id);
    if (decoded) yield decoded;
  }
}

async function stream(method: string, path: string, body: unknown, signal: AbortSignal, extra?: HeadersInit): Promise<AsyncGenerator<StreamEvent>> {
  const res = await request(method, path, body, { Accept: "text/event-stream", ...extra }, signal);
  return events(res);
}

export function sendMessage(id: string, content: string, clientMessageId: string, signal: AbortSignal) {
  const request: Wire["SendMessage"] = { content, client_message_id: clientMessageId };
  return stream("POST", `${base(id)}/messages`, request, signal);
}

/**
 * A new version of reply `messageId` (none: the last); the old one stays as its sibling.
 * `model`: another model for this version only (none: the chat's).
 */
export function regenerate(id: string, signal: AbortSignal, messageId?: string, model?: string | null) {
  const request: Wire["Regenerate"] = { ...(messageId ? { message_id: messageId } : {}), ...(model ? { model } : {}) };
  return stream("POST", `${base(id)}/regenerate`, request, signal);
}

export function editMessage(id: string, messageId: string, content: string, signal: AbortSignal) {
  const request: Wire["EditMessage"] = { content };
  return stream("PATCH", `${base(id)}/messages/${encodeURIComponent(messageId)}`, request, signal);
}

/** Ask the model to go on from a reply's text: its deltas append to it (same message id). */
export function continueReply(id: string, messageId: string, signal: AbortSignal) {
  return stream("POST", `${base(id)}/messages/${encodeURIComponent(messageId)}/continue`, undefined, signal);
}

export function resumeReply(id: string, messageId: string, lastEventId: string | null, signal: AbortSignal) {
  const extra: Record<string, string> = lastEventId ? { "Last-Event-ID": lastEventId } : {};
  return stream("GET", `${base(id)}/messages/${encodeURIComponent(messageId)}/stream`, undefined, signal, extra);
}

/**
 * Whether a message sent now would get a reply: conversation's `GET /api/health/ready`.
 * `loading`: the model is still being loaded; `unreachable`: the model service (or the chat
 * service itself) does not answer, or could not load its model.
 */
export type ModelState = "ready" | "loading" | "unreachable";

export async function getReadiness(signal: AbortSignal): Promise<ModelState> {
  let res: Response;
  try {
    res = await fetch("/api/health/ready", { headers: { Accept: "application/json" }, cache: "no-store", signal });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    return "unreachable";
  }
  if (res.ok) return "ready";
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    // nginx's own error page (conversation down): unreachable
  }
  // Conversation's Readiness, or nginx's own error when conversation does not answer.
  const assistant = typeof body === "object" && body !== null ? (body as Partial<Wire["Readiness"]>).assistant : null;
  return assistant === "loading" ? "loading" : "unreachable";
}

/** A read-only snapshot of a chat, as a share link shows it. */
export type SharedChat = Wire["SharedChat"];

export type ShareLink = Wire["ShareLink"];

const share = (shareId: string) => `/api/shares/${encodeURIComponent(shareId)}`;

/** Read without credentials: the link is the permission, and this page sends no cookie. */
export async function getShare(shareId: string): Promise<SharedChat> {
  let res: Response;
  try {
    res = await fetch(share(shareId), { headers: { Accept: "application/json" }, credentials: "omit", cache: "no-store" });
  } catch {
    throw new ApiError("network", "The chat service could not be reached. Check your connection.", 0);
  }
  if (!res.ok) throw await errorFrom(res);
  return (await res.json()) as SharedChat;
}

/** Copy a shared chat into this browser's own chats; returns the new chat. */
export async function continueShare(shareId: string): Promise<SessionSummary> {
  return toSummary(await json<Wire["SessionCreated"]>("POST", `${share(shareId)}/continue`, {}));
}

export async function createShare(id: string, expiresIn: number | null): Promise<ShareLink> {
  const request: Wire["CreateShare"] = expiresIn === null ? {} : { expires_in: expiresIn };
  return json<ShareLink>("POST", `${base(id)}/shares`, request);
}

export async function listShares(id: string): Promise<ShareLink[]> {
  return (await json<Wire["ShareList"]>("GET", `${base(id)}/shares`)).shares;
}

export async function revokeShare(id: string, shareId: string): Promise<void> {
  await json<unknown>("DELETE", `${base(id)}/shares/${encodeURIComponent(shareId)}`);
}

/** Where a chat's export downloads from (the browser's cookie authorizes it). */
export function exportUrl(id: string, format: "md" | "json"): string {
  return `${base(id)}/export?format=${format}`;
}

export const EXPORT_ALL_URL = "/api/export";

export type ImportReport = Wire["ImportResult"];

/** Import a file of chats (our export or ChatGPT's conversations.json) as this browser's. */
export async function importChats(file: Blob): Promise<ImportReport> {
  const res = await fetch("/api/import", {
    method: "POST",
    headers: { ...HEADERS, "Content-Type": "application/json" },
    body: file,
    credentials: "same-origin",
    cache: "no-store",
  }).catch(() => {
    throw new ApiError("network", "The chat service could not be reached. Check your connection.", 0);
  });
  if (!res.ok) throw await errorFrom(res);
  return (await res.json()) as ImportReport;
}

/** A piece of a search snippet; `hit` marks where the query matched. Text only, never HTML. */
export type Segment = Wire["Segment"];

/** `message_id` null: the chat's title matched. */
export type SearchResult = Wire["SearchResult"];

export async function searchChats(q: string, signal: AbortSignal): Promise<SearchResult[]> {
  const res = await request("GET", `/api/search?${new URLSearchParams({ q }).toString()}`, undefined, undefined, signal);
  return ((await res.json()) as Wire["SearchResults"]).results;
}
