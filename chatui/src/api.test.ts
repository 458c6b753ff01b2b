import { afterEach, describe, expect, it, vi } from "vitest";
import { type ApiError, continueReply, getSession, kindOf, messageOf, retryAfterOf, sendMessage, toStreamEvent, type StreamEvent } from "./api";

describe("messageOf", () => {
  it("reads the detail string or FastAPI's validation list, and the code", () => {
    expect(messageOf({ detail: "The message is 9000 characters long; the limit is 8000." }, "x").message).toContain("limit is 8000");
    expect(messageOf({ detail: [{ msg: "Field required", type: "missing" }] }, "x")).toEqual({ message: "Field required", code: "missing" });
    expect(messageOf({ detail: "Too many requests", code: "rate_limited" }, "x")).toEqual({ message: "Too many requests", code: "rate_limited" });
  });

  it("falls back when the body is not JSON (an HTML error page)", () => {
    expect(messageOf(null, "The chat service is not reachable right now.").message).toBe("The chat service is not reachable right now.");
  });
});

describe("toStreamEvent", () => {
  it("decodes conversation's events", () => {
    expect(toStreamEvent("start", '{"message_id":"m1"}', "0")).toEqual({ type: "start", id: "0", messageId: "m1" });
    expect(toStreamEvent("delta", '{"text":"Hi "}', "3")).toEqual({ type: "delta", id: "3", text: "Hi " });
    expect(toStreamEvent("queued", '{"position":2}', "0")).toEqual({ type: "queued", id: "0", position: 2 });
    expect(toStreamEvent("error", '{"code":"assistant_unavailable","message":"down"}', "3")).toEqual({
      type: "error",
      id: "3",
      code: "assistant_unavailable",
      message: "down",
      retryAfterSeconds: null,
    });
    // The same data as conversation's WebSocket error frame, with the wait it asks for.
    expect(toStreamEvent("error", '{"code":"rate_limited","message":"Too many replies.","retry_after":42}', "0")).toMatchObject({
      code: "rate_limited",
      retryAfterSeconds: 42,
    });
    const done = toStreamEvent("done", '{"id":"m1","role":"assistant","content":"Hi","status":"complete","created_at":"2026-01-01T00:00:00Z","usage":null}', "2");
    expect(done).toMatchObject({ type: "done", message: { id: "m1", content: "Hi", status: "complete" } });
    const user = toStreamEvent("user", '{"id":"u1","role":"user","content":"hey","status":"complete"}', "0");
    expect(user).toMatchObject({ type: "user", message: { id: "u1", role: "user", content: "hey" } });
  });

  it("ignores unknown events and broken JSON instead of failing the stream", () => {
    expect(toStreamEvent("usage", "{}", "1")).toBeNull();
    expect(toStreamEvent("delta", "{not json", "1")).toBeNull();
  });
});

describe("kindOf", () => {
  it("sorts by the server's code first, then by status, never by the words", () => {
    expect(kindOf(429, "rate_limited")).toBe("rate_limited");
    expect(kindOf(400, "rate_limited")).toBe("rate_limited");
    expect(kindOf(429, "")).toBe("rate_limited");
    expect(kindOf(507, "storage_full")).toBe("storage_full");
    expect(kindOf(507, "")).toBe("storage_full");
    expect(kindOf(413, "too_large")).toBe("too_long");
    expect(kindOf(409, "conflict")).toBe("busy");
    expect(kindOf(404, "")).toBe("expired");
    expect(kindOf(400, "a code we do not know")).toBe("invalid");
    expect(kindOf(418, "")).toBe("other");
  });
});

describe("retryAfterOf", () => {
  it("reads seconds, rounding up, and ignores what is not a number of seconds", () => {
    expect(retryAfterOf("12")).toBe(12);
    expect(retryAfterOf(2.1)).toBe(3);
    expect(retryAfterOf("0")).toBe(0);
    expect(retryAfterOf("Wed, 21 Oct 2026 07:28:00 GMT")).toBeNull();
    expect(retryAfterOf("-1")).toBeNull();
    expect(retryAfterOf("")).toBeNull();
    expect(retryAfterOf(null)).toBeNull();
  });
});

/** What the page asked the server, and a canned answer for it. */
function serve(answer: () => Response): { calls: { url: string; init: RequestInit }[] } {
  const calls: { url: string; init: RequestInit }[] = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return answer();
  });
  return { calls };
}

function sse(...events: string[]): Response {
  return new Response(events.join(""), { status: 200, headers: { "Content-Type": "text/event-stream" } });
}

async function all(events: AsyncGenerator<StreamEvent>): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

describe("the conversation API as the page calls it", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("continue: POST .../messages/{mid}/continue with no body, read as a reply stream", async () => {
    const { calls } = serve(() =>
      sse(
        'event: start\nid: 4\ndata: {"message_id":"m1"}\n\n',
        'event: delta\nid: 8\ndata: {"text":" two"}\n\n',
        'event: done\nid: 8\ndata: {"id":"m1","role":"assistant","content":"Echo two","status":"length"}\n\n',
      ),
    );
    const events = await all(await continueReply("s1", "m1", new AbortController().signal));
    expect(calls).toHaveLength(1);
    expect(calls[0]?.url).toBe("/api/sessions/s1/messages/m1/continue");
    expect(calls[0]?.init.method).toBe("POST");
    expect(calls[0]?.init.body).toBeNull();
    const headers = new Headers(calls[0]?.init.headers);
    expect(headers.get("X-Requested-With")).toBe("chatui");
    expect(headers.has("Content-Type")).toBe(false);
    expect(events).toEqual([
      { type: "start", id: "4", messageId: "m1" },
      { type: "delta", id: "8", text: " two" },
      { type: "done", id: "8", message: expect.objectContaining({ id: "m1", content: "Echo two", status: "length" }) },
    ]);
  });

  it("continue refused: 409 conflict becomes an error with the server's sentence", async () => {
    serve(() => Response.json({ detail: "This reply is complete: there is nothing to continue.", code: "conflict" }, { status: 409 }));
    const refused = continueReply("s1", "m1", new AbortController().signal);
    await expect(refused).rejects.toMatchObject({ kind: "busy", status: 409, message: "This reply is complete: there is nothing to continue." });
  });

  it("429 with Retry-After, 507 and 413: the kind, the server's words and the wait", async () => {
    const cases: [Response, Partial<ApiError>][] = [
      [
        Response.json({ detail: "20 messages a minute at most; try again in 31 s.", code: "rate_limited" }, { status: 429, headers: { "Retry-After": "31" } }),
        { kind: "rate_limited", message: "20 messages a minute at most; try again in 31 s.", retryAfterSeconds: 31 },
      ],
      [Response.json({ detail: "No room left for this chat.", code: "storage_full" }, { status: 507 }), { kind: "storage_full", message: "No room left for this chat." }],
      [Response.json({ detail: "The request is larger than 64 KiB.", code: "too_large" }, { status: 413 }), { kind: "too_long", message: "The request is larger than 64 KiB." }],
      [new Response("<html>507</html>", { status: 507 }), { kind: "storage_full", message: "There is no room left to store this chat." }],
    ];
    for (const [answer, expected] of cases) {
      serve(() => answer);
      await expect(sendMessage("s1", "hi", "c1", new AbortController().signal)).rejects.toMatchObject(expected);
    }
  });

  it("history pages: the newest, then those before a message, with has_more", async () => {
    const { calls } = serve(() =>
      Response.json({ session_id: "s1", name: "Chat", messages: [{ id: "m1", role: "user", content: "hi", status: "complete" }], has_more: true }),
    );
    const newest = await getSession("s1", { limit: 50 });
    expect(newest).toMatchObject({ session_id: "s1", has_more: true, messages: [{ id: "m1", content: "hi" }] });
    await getSession("s1", { limit: 50, before: "m 1/x" });
    expect(calls.map((c) => c.url)).toEqual(["/api/sessions/s1?limit=50", "/api/sessions/s1?limit=50&before=m+1%2Fx"]);
  });

  it("a server without paging (no has_more) reads as the whole history", async () => {
    serve(() => Response.json({ session_id: "s1", name: "Chat", messages: [] }));
    expect((await getSession("s1", { limit: 50 })).has_more).toBe(false);
  });
});
