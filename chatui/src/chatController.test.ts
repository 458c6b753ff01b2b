import { describe, expect, it, vi } from "vitest";
import { ApiError, type Message, type SessionDetail, type StreamEvent } from "./api";
import { ChatController, RESUME_DELAYS_MS, type ChatApi } from "./chatController";

const delta = (end: number, text: string): StreamEvent => ({ type: "delta", id: String(end), text });
const reply = (content: string, status: Message["status"] = "complete"): Message => ({ id: "a1", role: "assistant", content, status });

/** A stream of events that, with `cut`, ends like a dropped connection. */
async function* stream(events: StreamEvent[], cut = false): AsyncGenerator<StreamEvent> {
  for (const e of events) yield e;
  if (cut) throw new TypeError("network error");
}

function harness(api: Partial<ChatApi>) {
  const restoreDraft = vi.fn();
  const waits: number[] = [];
  const fail = () => Promise.reject(new Error("not expected in this test"));
  const full: ChatApi = {
    getSession: fail,
    createSession: fail,
    sendMessage: fail,
    regenerate: fail,
    editMessage: fail,
    resumeReply: fail,
    cancelReply: () => Promise.resolve(),
    ...api,
  };
  const wait = (ms: number) => {
    waits.push(ms);
    return Promise.resolve();
  };
  const controller = new ChatController({ restoreDraft, onListChanged: () => undefined }, full, wait);
  return { controller, restoreDraft, waits, state: controller.getState };
}

const session = (messages: Message[]): SessionDetail => ({ session_id: "s1", name: "Chat", messages });

describe("ChatController", () => {
  it("resumes a dropped reply from the last event id, without duplicating text", async () => {
    const resumeReply = vi.fn(async () =>
      stream([delta(10, "two "), delta(15, "three"), { type: "done", id: "15", message: reply("Echo: two three") }]),
    );
    const h = harness({
      getSession: async () => session([]),
      sendMessage: async () =>
        stream(
          [
            { type: "user", id: "0", message: { id: "u1", role: "user", content: "two three", status: "complete" } },
            { type: "start", id: "0", messageId: "a1" },
            delta(6, "Echo: "),
            delta(10, "two "),
          ],
          true,
        ),
      resumeReply,
    });
    await h.controller.open("s1");
    await h.controller.send("two three", "c1");
    expect(resumeReply).toHaveBeenCalledWith("s1", "a1", "10", expect.anything());
    expect(h.state().messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ["user", "two three", "complete"],
      ["assistant", "Echo: two three", "complete"],
    ]);
    expect(h.state().phase).toBe("idle");
  });

  it("follows a reply still being written when a chat is opened (page reload)", async () => {
    const resumeReply = vi.fn(async () =>
      stream([delta(6, "Echo: "), delta(8, "hi"), { type: "done", id: "8", message: null }]),
    );
    const h = harness({
      getSession: async () => session([{ id: "u1", role: "user", content: "hi", status: "complete" }, reply("Echo:", "streaming")]),
      resumeReply,
    });
    await h.controller.open("s1");
    // the page shows "Echo:" (5 characters) already: the resume starts after it
    expect(resumeReply).toHaveBeenCalledWith("s1", "a1", "5", expect.anything());
    expect(h.state().messages[1]).toMatchObject({ content: "Echo: hi", status: "complete" });
  });

  it("puts a refused message back into the composer and says what to do", async () => {
    const h = harness({
      getSession: async () => session([]),
      sendMessage: async () => {
        throw new ApiError("too_long", "Message is longer than 8000 characters.", 422);
      },
    });
    await h.controller.open("s1");
    await h.controller.send("long text", "c1");
    expect(h.restoreDraft).toHaveBeenCalledWith("long text");
    expect(h.state().messages).toEqual([]);
    expect(h.state().error).toMatchObject({ kind: "too_long", retry: null });
    expect(h.state().error?.message).toContain("Shorten the message");
  });

  it("keeps a rate-limited message in the notice (Send again), not in the composer", async () => {
    const h = harness({
      getSession: async () => session([]),
      sendMessage: async () => {
        throw new ApiError("rate_limited", "Too many requests.", 429, 1);
      },
    });
    await h.controller.open("s1");
    await h.controller.send("hi", "c1");
    expect(h.restoreDraft).not.toHaveBeenCalled();
    expect(h.state().error).toMatchObject({ kind: "rate_limited", retry: { type: "send", content: "hi", clientMessageId: "c1" } });
  });

  it("offers a new chat when the chat has expired", async () => {
    const h = harness({ getSession: async () => Promise.reject(new ApiError("expired", "Session not found.", 404)) });
    await h.controller.open("gone");
    expect(h.state().error).toMatchObject({ kind: "expired", retry: { type: "new-chat" } });
  });

  it("stop pressed before the reply has an id cancels it as soon as it has one", async () => {
    const cancelReply = vi.fn(async () => undefined);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const h = harness({
      getSession: async () => session([]),
      cancelReply,
      sendMessage: async () =>
        (async function* () {
          await gate;
          yield { type: "start", id: "0", messageId: "a1" } as StreamEvent;
          yield { type: "done", id: "0", message: reply("", "cancelled") } as StreamEvent;
        })(),
    });
    await h.controller.open("s1");
    const sending = h.controller.send("hi", "c1");
    h.controller.stop();
    expect(cancelReply).not.toHaveBeenCalled();
    release();
    await sending;
    expect(cancelReply).toHaveBeenCalledWith("s1", "a1");
    expect(h.state().messages[1]?.status).toBe("cancelled");
  });

  it("gives up resuming after its last attempt and offers to retry", async () => {
    const h = harness({
      getSession: async () => session([]),
      sendMessage: async () => stream([{ type: "start", id: "0", messageId: "a1" }, delta(4, "Echo")], true),
      resumeReply: async () => stream([], true),
    });
    await h.controller.open("s1");
    await h.controller.send("hi", "c1");
    expect(h.waits).toEqual(RESUME_DELAYS_MS);
    expect(h.state().error).toMatchObject({ kind: "network", retry: { type: "resume" } });
    expect(h.state().messages[1]).toMatchObject({ content: "Echo", status: "interrupted" });
  });

  it("a send cut before the reply started is retried with the same client_message_id", async () => {
    const sendMessage = vi.fn(async () => stream([], true));
    const h = harness({ getSession: async () => session([]), sendMessage });
    await h.controller.open("s1");
    await h.controller.send("hi", "c1");
    const retry = h.state().error?.retry;
    expect(retry).toEqual({ type: "send", content: "hi", clientMessageId: "c1" });
    h.controller.retry(retry!);
    await vi.waitFor(() => expect(sendMessage).toHaveBeenCalledTimes(2));
    expect(sendMessage).toHaveBeenLastCalledWith("s1", "hi", "c1", expect.anything());
  });
});
