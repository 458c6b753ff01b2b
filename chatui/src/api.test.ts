import { describe, expect, it } from "vitest";
import { messageOf, toStreamEvent } from "./api";

describe("messageOf", () => {
  it("reads FastAPI's detail string, validation list and nested error objects", () => {
    expect(messageOf({ detail: "The message is 9000 characters long; the limit is 8000." }, "x").message).toContain("limit is 8000");
    expect(messageOf({ detail: [{ msg: "Field required", type: "missing" }] }, "x")).toEqual({ message: "Field required", code: "missing" });
    expect(messageOf({ error: { message: "Slow down", code: "rate_limited" } }, "x")).toEqual({ message: "Slow down", code: "rate_limited" });
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
    expect(toStreamEvent("error", '{"code":"assistant_unavailable","message":"down"}', "3")).toEqual({
      type: "error",
      id: "3",
      code: "assistant_unavailable",
      message: "down",
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
