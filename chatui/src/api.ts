/**
 * The conversation service's HTTP API, in one place.
 *
 * Field names and routes follow conversation/ (the source of truth); anything that has to
 * adapt to them lives here and nowhere else. The browser is identified by an HttpOnly
 * cookie that conversation sets on `POST /api/sessions`: the token in that response is
 * never kept, so no page script can read a credential.
 */

import { readSse } from "./sse";

export type Role = "user" | "assistant" | "system";
/**
 * `length`: the model stopped at its token limit (Continue asks for more). `pending` is the
 * page's own: a user message sent but not yet confirmed as stored.
 */
export type MessageStatus = "complete" | "length" | "streaming" | "cancelled" | "error" | "interrupted" | "pending";

/** Replies that stopped short of an answer: Continue asks the model to go on from their text. */
export const CONTINUABLE: ReadonlySet<MessageStatus> = new Set(["length", "cancelled", "interrupted"]);

export interface Message {
  id: string;
  role: Role;
  content: string;
  status: MessageStatus;
  created_at?: string;
  /** Why a reply failed (its `error` event), kept by the server so a reload knows too. */
  error?: { code: string; message: string } | null;
  /** The model that wrote a reply, as the model service reported it. */
  model?: string | null;
  /** A reply's tokens, when the model reported them. */
  usage?: Usage | null;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface SessionSummary {
  session_id: string;
  name: string;
  created_at?: string;
  updated_at?: string;
  /** The chat's model (null: the service's default). */
  model?: string | null;
}

/** One model of the catalogue (`GET /api/models`). */
export interface ModelInfo {
  id: string;
  display_name: string;
  provider: string;
  context_length: number | null;
  /** Not ready: still loading, or its provider is unreachable; it can be chosen anyway. */
  ready: boolean;
  default: boolean;
}

export interface Catalogue {
  models: ModelInfo[];
  default: string | null;
}

/** One page of a chat's history: its newest messages, or those just before a given one. */
export interface SessionDetail extends SessionSummary {
  /** Oldest first. */
  messages: Message[];
  /** Older messages exist than the first of `messages`. */
  has_more: boolean;
}

/** Which page of history to read: `limit` messages ending just before `before` (or the newest). */
export interface HistoryPage {
  limit: number;
  before?: string;
}

/** One event of a reply stream, already decoded. */
export type StreamEvent =
  | { type: "user"; id: string | null; message: Message }
  | { type: "start"; id: string | null; messageId: string }
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

/** Pull a human sentence out of FastAPI's `detail` (string or validation list) or `error.message`. */
export function messageOf(body: unknown, fallback: string): { message: string; code: string } {
  if (typeof body !== "object" || body === null) return { message: fallback, code: "" };
  const b = body as Record<string, unknown>;
  const err = b.error;
  if (typeof err === "object" && err !== null) {
    const e = err as Record<string, unknown>;
    if (typeof e.message === "string") return { message: e.message, code: String(e.code ?? "") };
  }
  const code = typeof b.code === "string" ? b.code : "";
  const detail = b.detail;
  if (typeof detail === "string") return { message: detail, code };
  if (Array.isArray(detail) && detail.length > 0) {
    const first = detail[0] as Record<string, unknown>;
    if (typeof first.msg === "string") return { message: first.msg, code: String(first.type ?? code) };
  }
  if (typeof detail === "object" && detail !== null) {
    const d = detail as Record<string, unknown>;
    if (typeof d.message === "string") return { message: d.message, code: String(d.code ?? code) };
    if (typeof d.msg === "string") return { message: d.msg, code };
  }
  if (typeof b.message === "string") return { message: b.message, code };
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
  if (extra) new Headers(extra).forEach((v, k) => headers.set(k, v));
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

function str(v: unknown, fallback = ""): string {
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : fallback;
}

export function toMessage(raw: unknown): Message {
  const m = (raw ?? {}) as Record<string, unknown>;
  const role = str(m.role, "assistant");
  const e = m.error;
  const error =
    typeof e === "object" && e !== null
      ? { code: str((e as Record<string, unknown>).code, "error"), message: str((e as Record<string, unknown>).message) }
      : null;
  const model = str(m.model) || null;
  const usage = toUsage(m.usage);
  return {
    id: str(m.id ?? m.message_id),
    role: role === "user" || role === "system" ? role : "assistant",
    content: str(m.content),
    status: (str(m.status, "complete") as MessageStatus) || "complete",
    created_at: str(m.created_at) || undefined,
    ...(error ? { error } : {}),
    ...(model ? { model } : {}),
    ...(usage ? { usage } : {}),
  };
}

function toUsage(raw: unknown): Usage | null {
  if (typeof raw !== "object" || raw === null) return null;
  const u = raw as Record<string, unknown>;
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  return { prompt_tokens: n(u.prompt_tokens), completion_tokens: n(u.completion_tokens), total_tokens: n(u.total_tokens) };
}

function toSummary(raw: unknown): SessionSummary {
  const s = (raw ?? {}) as Record<string, unknown>;
  return {
    session_id: str(s.session_id ?? s.id),
    name: str(s.name),
    created_at: str(s.created_at) || undefined,
    updated_at: str(s.updated_at ?? s.last_active ?? s.created_at) || undefined,
    model: str(s.model) || null,
  };
}

const base = (id: string) => `/api/sessions/${encodeURIComponent(id)}`;

export async function listSessions(): Promise<SessionSummary[]> {
  const body = await json<unknown>("GET", "/api/sessions");
  const list = Array.isArray(body) ? body : ((body as Record<string, unknown> | null)?.sessions ?? []);
  return (list as unknown[]).map(toSummary);
}

export async function createSession(name: string, model: string | null = null): Promise<SessionSummary> {
  // The response also holds a bearer token: deliberately dropped, the cookie is our credential.
  const body = await json<unknown>("POST", "/api/sessions", model ? { name, model } : { name });
  return toSummary(body);
}

/** The models a chat may use, each with its readiness. */
export async function listModels(): Promise<Catalogue> {
  const body = await json<Record<string, unknown>>("GET", "/api/models");
  const models = Array.isArray(body.models) ? (body.models as ModelInfo[]) : [];
  return { models, default: str(body.default) || null };
}

/** The chat's model from its next reply on. */
export async function setSessionModel(id: string, model: string): Promise<SessionSummary> {
  return toSummary(await json<unknown>("PATCH", base(id), { model }));
}

export async function getSession(id: string, page: HistoryPage): Promise<SessionDetail> {
  const query = new URLSearchParams({ limit: String(page.limit) });
  if (page.before) query.set("before", page.before);
  const body = await json<Record<string, unknown>>("GET", `${base(id)}?${query.toString()}`);
  const messages = Array.isArray(body.messages) ? body.messages.map(toMessage) : [];
  return { ...toSummary({ session_id: id, ...body }), messages, has_more: body.has_more === true };
}

export async function renameSession(id: string, name: string): Promise<void> {
  await json<unknown>("PATCH", base(id), { name });
}

export async function deleteSession(id: string): Promise<void> {
  await json<unknown>("DELETE", base(id));
}

export async function cancelReply(id: string, messageId: string): Promise<void> {
  await json<unknown>("POST", `${base(id)}/messages/${encodeURIComponent(messageId)}/cancel`);
}

/** Decode one SSE event of a reply stream; unknown events (future additions) give null. */
export function toStreamEvent(event: string, data: string, id: string | null): StreamEvent | null {
  let d: Record<string, unknown> = {};
  try {
    const parsed: unknown = data ? JSON.parse(data) : {};
    if (typeof parsed === "object" && parsed !== null) d = parsed as Record<string, unknown>;
  } catch {
    return null;
  }
  switch (event) {
    case "user":
      return { type: "user", id, message: toMessage({ role: "user", ...(d.message as object ?? d) }) };
    case "start":
      return { type: "start", id, messageId: str(d.message_id ?? d.id) };
    case "delta":
      return { type: "delta", id, text: str(d.text ?? d.content) };
    case "done": {
      const m = (d.message ?? d) as Record<string, unknown>;
      return { type: "done", id, message: m.id !== undefined || m.message_id !== undefined ? toMessage({ role: "assistant", ...m }) : null };
    }
    case "error":
      return {
        type: "error",
        id,
        code: str(d.code, "error"),
        message: str(d.message, "The reply failed."),
        retryAfterSeconds: retryAfterOf(d.retry_after),
      };
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
  return stream("POST", `${base(id)}/messages`, { content, client_message_id: clientMessageId }, signal);
}

/** `model`: another model for this reply only (null: the chat's). */
export function regenerate(id: string, signal: AbortSignal, model: string | null = null) {
  return stream("POST", `${base(id)}/regenerate`, model ? { model } : {}, signal);
}

export function editMessage(id: string, messageId: string, content: string, signal: AbortSignal) {
  return stream("PATCH", `${base(id)}/messages/${encodeURIComponent(messageId)}`, { content }, signal);
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
  const assistant = typeof body === "object" && body !== null ? (body as Record<string, unknown>).assistant : null;
  return assistant === "loading" ? "loading" : "unreachable";
}
