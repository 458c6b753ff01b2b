import { describe, expect, it, vi } from "vitest";
import { ApiError, type HistoryPage, type Message, type SessionDetail, type StreamEvent } from "./api";
import { ChatController, HISTORY_PAGE, RESUME_DELAYS_MS, toChatError, type ChatApi } from "./chatController";

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
    continueReply: fail,
    resumeReply: fail,
    cancelReply: () => Promise.resolve(),
    setSessionModel: fail,
    showSibling: fail,
    openBranchOf: fail,
    ...api,
  };
  const wait = (ms: number) => {
    waits.push(ms);
    return Promise.resolve();
  };
  const controller = new ChatController({ restoreDraft, onListChanged: () => undefined }, full, wait);
  return { controller, restoreDraft, waits, state: controller.getState };
}

const session = (messages: Message[]): SessionDetail => ({ session_id: "s1", name: "Chat", messages, has_more: false });

describe("ChatController", () => {
  it("switching versions shows the path the server answers with", async () => {
    const user = (id: string, i: number): Message => ({ id, role: "user", content: id, status: "complete", sibling_index: i, sibling_count: 2 });
    const switched = vi.fn(async () => session([user("u1", 1), reply("Echo: u1")]));
    const h = harness({ getSession: async () => session([user("u2", 2)]), showSibling: switched });
    await h.controller.open("s1");
    await h.controller.showSibling("u2", 1);
    expect(switched).toHaveBeenCalledWith("s1", "u2", 1);
    expect(h.state().messages.map((m) => [m.id, m.sibling_index])).toEqual([
      ["u1", 1],
      ["a1", undefined],
    ]);
  });

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

  it("a rate-limited message goes back into the composer, with the server's words and when to retry", async () => {
    const h = harness({
      getSession: async () => session([]),
      sendMessage: async () => {
        throw new ApiError("rate_limited", "You sent 20 messages this minute.", 429, 30);
      },
    });
    await h.controller.open("s1");
    await h.controller.send("hi", "c1");
    expect(h.restoreDraft).toHaveBeenCalledWith("hi");
    expect(h.state().messages).toEqual([]);
    // The countdown says when: no vague "wait a moment" and no button that would be refused too.
    expect(h.state().error).toEqual({ kind: "rate_limited", message: "You sent 20 messages this minute.", retry: null, retryAfterSeconds: 30 });
  });

  it("keeps the message in the composer when the server has no room left or finds it too large", async () => {
    for (const err of [
      new ApiError("storage_full", "This chat holds 1000 messages, the most it may.", 507),
      new ApiError("too_long", "The request body is larger than 64 KiB.", 413),
    ]) {
      const h = harness({ getSession: async () => session([]), sendMessage: async () => Promise.reject(err) });
      await h.controller.open("s1");
      await h.controller.send("my text", "c1");
      expect(h.restoreDraft).toHaveBeenCalledWith("my text");
      expect(h.state().error).toMatchObject({ kind: err.kind, retry: null });
      expect(h.state().error?.message).toContain(err.message);
    }
    const full = toChatError(new ApiError("storage_full", "No room left.", 507), null);
    expect(full.message).toBe("No room left. Start a new chat, or delete chats you no longer need.");
  });

  it("a rate-limited regenerate keeps its Retry button, shown with the wait", async () => {
    const h = harness({
      getSession: async () => session([{ id: "u1", role: "user", content: "hi", status: "complete" }, reply("Echo: hi")]),
      regenerate: async () => Promise.reject(new ApiError("rate_limited", "Slow down.", 429, 5)),
    });
    await h.controller.open("s1");
    await h.controller.regenerate();
    expect(h.state().error).toMatchObject({ kind: "rate_limited", retry: { type: "regenerate" }, retryAfterSeconds: 5 });
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

  it("stop pressed while a continuation has not begun waits for its start event", async () => {
    const cancelReply = vi.fn(async () => undefined);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const h = harness({
      getSession: async () => session([{ id: "u1", role: "user", content: "hi", status: "complete" }, reply("Echo", "length")]),
      cancelReply,
      continueReply: async () =>
        (async function* () {
          await gate;
          yield { type: "start", id: "4", messageId: "a1" } as StreamEvent;
          yield { type: "done", id: "4", message: reply("Echo", "cancelled") } as StreamEvent;
        })(),
    });
    await h.controller.open("s1");
    const continuing = h.controller.continueReply("a1");
    h.controller.stop();
    expect(cancelReply).not.toHaveBeenCalled();
    release();
    await continuing;
    expect(cancelReply).toHaveBeenCalledTimes(1);
    expect(h.state().messages[1]?.status).toBe("cancelled");
  });

  it("sends a message refused for a loading model again once, when the model is ready", async () => {
    const regenerate = vi.fn(async () => stream([{ type: "start", id: "0", messageId: "a2" }, { type: "done", id: "2", message: reply("ok") }]));
    const h = harness({
      getSession: async () => session([]),
      sendMessage: async () =>
        stream([
          { type: "user", id: "0", message: { id: "u1", role: "user", content: "hi", status: "complete" } },
          { type: "error", id: "0", code: "assistant_not_ready", message: "The model is still loading." },
        ]),
      regenerate,
    });
    await h.controller.open("s1");
    await h.controller.send("hi", "c1");
    h.controller.modelReady();
    h.controller.modelReady();
    await vi.waitFor(() => expect(h.state().phase).toBe("idle"));
    expect(regenerate).toHaveBeenCalledTimes(1);
    expect(h.state().messages[1]).toMatchObject({ content: "ok", status: "complete" });
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

  it("continues a reply cut at the length limit: the new text is appended to the same message", async () => {
    const continueReply = vi.fn(async () =>
      stream([{ type: "start", id: "4", messageId: "a1" }, delta(8, " two"), { type: "done", id: "8", message: reply("Echo two", "complete") }]),
    );
    const h = harness({
      getSession: async () => session([{ id: "u1", role: "user", content: "hi", status: "complete" }, reply("Echo", "length")]),
      continueReply,
    });
    await h.controller.open("s1");
    await h.controller.continueReply("a1");
    expect(continueReply).toHaveBeenCalledWith("s1", "a1", expect.anything());
    expect(h.state().messages.map((m) => [m.id, m.content, m.status])).toEqual([
      ["u1", "hi", "complete"],
      ["a1", "Echo two", "complete"],
    ]);
  });

  it("resumes a dropped continuation after all the text the reply has", async () => {
    const resumeReply = vi.fn(async () => stream([delta(14, " three"), { type: "done", id: "14", message: reply("Echo two three") }]));
    const h = harness({
      getSession: async () => session([{ id: "u1", role: "user", content: "hi", status: "complete" }, reply("Echo", "cancelled")]),
      continueReply: async () => stream([{ type: "start", id: "4", messageId: "a1" }, delta(8, " two")], true),
      resumeReply,
    });
    await h.controller.open("s1");
    await h.controller.continueReply("a1");
    expect(resumeReply).toHaveBeenCalledWith("s1", "a1", "8", expect.anything());
    expect(h.state().messages[1]).toMatchObject({ content: "Echo two three", status: "complete" });
  });

  it("a continue the server refuses (409) shows why and leaves the reply as it was", async () => {
    const h = harness({
      getSession: async () => session([{ id: "u1", role: "user", content: "hi", status: "complete" }, reply("Echo", "interrupted")]),
      continueReply: async () => Promise.reject(new ApiError("busy", "Only the last reply can be continued.", 409)),
    });
    await h.controller.open("s1");
    await h.controller.continueReply("a1");
    expect(h.state().error).toMatchObject({ kind: "busy", message: "Only the last reply can be continued.", retry: null });
    expect(h.state().messages[1]).toMatchObject({ content: "Echo", status: "interrupted" });
    expect(h.restoreDraft).not.toHaveBeenCalled();
  });

  it("opens a chat on its newest page, then reads older pages before the first message shown", async () => {
    const page = (ids: string[], hasMore: boolean): SessionDetail => ({
      ...session(ids.map((id) => ({ id, role: "user", content: id, status: "complete" }))),
      has_more: hasMore,
    });
    const getSession = vi.fn(async (_id: string, p: HistoryPage) => (p.before ? page(["m1", "m2"], false) : page(["m3", "m4"], true)));
    const h = harness({ getSession });
    await h.controller.open("s1");
    expect(getSession).toHaveBeenLastCalledWith("s1", { limit: HISTORY_PAGE });
    const first = h.controller.loadOlder();
    const second = h.controller.loadOlder(); // one request at a time
    await Promise.all([first, second]);
    expect(getSession).toHaveBeenCalledTimes(2);
    expect(getSession).toHaveBeenLastCalledWith("s1", { limit: HISTORY_PAGE, before: "m3" });
    expect(h.state().messages.map((m) => m.id)).toEqual(["m1", "m2", "m3", "m4"]);
    await h.controller.loadOlder(); // has_more was false: nothing is asked
    expect(getSession).toHaveBeenCalledTimes(2);
  });

  it("an older page that fails leaves the chat usable and can be asked again", async () => {
    let fail = true;
    const h = harness({
      getSession: async (_id: string, p: HistoryPage) => {
        if (!p.before) return { ...session([{ id: "m3", role: "user", content: "m3", status: "complete" }]), has_more: true };
        if (fail) throw new ApiError("network", "offline", 0);
        return { ...session([{ id: "m2", role: "user", content: "m2", status: "complete" }]), has_more: false };
      },
    });
    await h.controller.open("s1");
    await h.controller.loadOlder();
    expect(h.state()).toMatchObject({ older: "failed", error: null });
    fail = false;
    await h.controller.loadOlder();
    expect(h.state().messages.map((m) => m.id)).toEqual(["m2", "m3"]);
  });
});

describe("a chat's model", () => {
  it("creates a new chat with the model picked for it, and changes an open chat's model", async () => {
    const createSession = vi.fn(async (name: string, model: string | null = null) => ({ session_id: "s9", name, model }));
    const setSessionModel = vi.fn(async (id: string, model: string) => ({ session_id: id, name: "Chat", model }));
    const h = harness({
      createSession,
      setSessionModel,
      sendMessage: async () => stream([{ type: "start", id: "0", messageId: "a1" }, { type: "done", id: "2", message: reply("hi") }]),
    });
    await h.controller.open(null);
    await h.controller.setModel("beta");
    expect(setSessionModel).not.toHaveBeenCalled();
    await h.controller.send("hello", "c1");
    expect(createSession).toHaveBeenCalledWith("hello", "beta");
    expect(h.state().model).toBe("beta");
    await h.controller.setModel("gamma");
    expect(setSessionModel).toHaveBeenCalledWith("s9", "gamma");
    expect(h.state().model).toBe("gamma");
  });

  it("puts the model back when the server refuses the change", async () => {
    const h = harness({
      getSession: async () => ({ ...session([]), model: "alpha" }),
      setSessionModel: async () => Promise.reject(new ApiError("invalid", "Unknown model 'nope'.", 422)),
    });
    await h.controller.open("s1");
    await h.controller.setModel("nope");
    expect(h.state().model).toBe("alpha");
    expect(h.state().error?.message).toContain("Unknown model");
  });

  it("regenerates with another model for that reply", async () => {
    const regenerate = vi.fn(async () => stream([{ type: "start", id: "0", messageId: "a2" }, { type: "done", id: "2", message: reply("hi") }]));
    const h = harness({ getSession: async () => session([]), regenerate });
    await h.controller.open("s1");
    await h.controller.regenerate("a1", "beta");
    expect(regenerate).toHaveBeenCalledWith("s1", expect.anything(), "a1", "beta");
  });

  it("opens a chat at a message further back, then reads newer pages and the newest before sending", async () => {
    const page = (ids: string[], hasNewer: boolean): SessionDetail => ({
      ...session(ids.map((id) => ({ id, role: "user", content: id, status: "complete" }))),
      has_more: true,
      has_newer: hasNewer,
    });
    const getSession = vi.fn(async (_id: string, p: HistoryPage) => {
      if (p.around) return page(["m4", "m5", "m6"], true);
      if (p.after) return page(["m7", "m8"], true);
      return page(["m9"], false);
    });
    const h = harness({ getSession, sendMessage: async () => stream([{ type: "error", id: "0", code: "internal_error", message: "no" }]) });
    await h.controller.open("s1", "m5");
    expect(getSession).toHaveBeenLastCalledWith("s1", { limit: HISTORY_PAGE, around: "m5" });
    expect(h.state()).toMatchObject({ hasNewer: true, newer: "idle" });
    await h.controller.loadNewer();
    expect(getSession).toHaveBeenLastCalledWith("s1", { limit: HISTORY_PAGE, after: "m6" });
    expect(h.state().messages.map((m) => m.id)).toEqual(["m4", "m5", "m6", "m7", "m8"]);
    // A message goes after the newest one: that page is read first.
    await h.controller.send("hello", "c1");
    expect(getSession).toHaveBeenLastCalledWith("s1", { limit: HISTORY_PAGE });
    expect(h.state().messages.map((m) => m.id)[0]).toBe("m9");
    expect(h.state().hasNewer).toBe(false);
  });

  it("a message on a branch not shown has its branch shown first; one gone leaves the newest page", async () => {
    let switched = false;
    const openBranchOf = vi.fn(async () => {
      switched = true;
      return session([]);
    });
    const getSession = vi.fn(async (_id: string, p: HistoryPage) => {
      if (p.around === "gone") throw new ApiError("expired", "not in this session", 404);
      if (p.around && !switched) throw new ApiError("busy", "on a branch not shown", 409);
      return session([{ id: p.around ?? "newest", role: "user", content: "x", status: "complete" }]);
    });
    const h = harness({ getSession, openBranchOf });
    await h.controller.open("s1", "hidden");
    expect(openBranchOf).toHaveBeenCalledWith("s1", "hidden");
    expect(h.state().messages.map((m) => m.id)).toEqual(["hidden"]);
    await h.controller.open("s1", "gone");
    expect(h.state().messages.map((m) => m.id)).toEqual(["newest"]);
    expect(h.state().error).toBeNull();
  });
});
