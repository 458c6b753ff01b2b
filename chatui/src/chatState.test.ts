import { describe, expect, it } from "vitest";
import type { Message, SessionDetail, StreamEvent } from "./api";
import { chatReducer, initialChat, isBusy, replyWaitingForModel, type ChatAction, type ChatState } from "./chatState";

function run(state: ChatState, ...actions: ChatAction[]): ChatState {
  return actions.reduce(chatReducer, state);
}

const ev = (event: StreamEvent): ChatAction => ({ type: "event", event });
/** A delta as conversation sends it: its id is the reply's length in characters at its end. */
const delta = (end: number, text: string) => ev({ type: "delta", id: String(end), text });
const msg = (id: string, role: Message["role"], content: string, status: Message["status"] = "complete"): Message => ({
  id,
  role,
  content,
  status,
});
const opened = run(initialChat, { type: "open", sessionId: "s1" }, { type: "loaded", session: { session_id: "s1", name: "Chat", messages: [], has_more: false } });

function sent(content = "hi"): ChatState {
  return run(
    opened,
    { type: "send", content, clientMessageId: "c1" },
    ev({ type: "user", id: "0", message: msg("u1", "user", content) }),
    ev({ type: "start", id: "0", messageId: "a1" }),
  );
}

describe("sending and streaming", () => {
  it("keeps the reply's place in the model's queue until its text comes", () => {
    const waiting = run(sent(), ev({ type: "queued", id: "0", position: 1 }), ev({ type: "queued", id: "0", position: 0 }));
    expect(waiting.messages[1]).toMatchObject({ id: "a1", content: "", queuePosition: 0 });
    const writing = run(waiting, delta(2, "Hi"));
    expect(writing.messages[1]).toMatchObject({ content: "Hi", status: "streaming" });
  });

  it("shows the message at once, then the reply word by word", () => {
    const s0 = run(opened, { type: "send", content: "hi", clientMessageId: "c1" });
    expect(s0.messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ["user", "hi", "pending"],
      ["assistant", "", "streaming"],
    ]);
    expect(s0.phase).toBe("waiting");
    const s1 = run(sent(), delta(6, "Echo: "), delta(8, "hi"));
    expect(s1.phase).toBe("streaming");
    expect(s1.messages[0]).toMatchObject({ id: "u1", status: "complete", key: "c1" });
    expect(s1.messages[1]).toMatchObject({ id: "a1", content: "Echo: hi", status: "streaming" });
    expect(isBusy(s1)).toBe(true);
  });

  it("takes the stored reply on done and becomes idle", () => {
    const s = run(sent(), delta(8, "Echo: hi"), ev({ type: "done", id: "8", message: msg("a1", "assistant", "Echo: hi") }));
    expect(s.phase).toBe("idle");
    expect(s.messages[1]).toMatchObject({ id: "a1", content: "Echo: hi", status: "complete" });
    expect(isBusy(s)).toBe(false);
    // the React key stays the placeholder's, so the bubble is not re-mounted
    expect(s.messages[1]?.key).toBe(sent().messages[1]?.key);
  });
});

describe("resume without duplicates", () => {
  it("takes from an overlapping resumed stream only the text beyond what it has", () => {
    const before = run(sent(), delta(6, "Echo: "), delta(10, "one "));
    expect(before.offset).toBe(10);
    const after = run(
      before,
      { type: "connectionLost" },
      { type: "resuming", messageId: "a1" },
      delta(10, "one "), // repeated whole
      delta(14, "e two "), // overlaps by two characters
      delta(19, "three"),
    );
    expect(after.messages[1]?.content).toBe("Echo: one two three");
    expect(after.phase).toBe("streaming");
  });

  it("resumes a reloaded reply after the text it already shows, even if replayed from the start", () => {
    const reloaded = run(initialChat, { type: "open", sessionId: "s1" }, {
      type: "loaded",
      session: { session_id: "s1", name: "Chat", messages: [msg("u1", "user", "hi 👋"), msg("a1", "assistant", "Echo: hi", "streaming")], has_more: false },
    });
    expect(reloaded.phase).toBe("reconnecting");
    expect(reloaded.replyId).toBe("a1");
    expect(reloaded.offset).toBe(8);
    const replayed = run(reloaded, { type: "resuming", messageId: "a1" }, delta(6, "Echo: "), delta(9, "hi "), delta(10, "👋"));
    expect(replayed.messages[1]?.content).toBe("Echo: hi 👋");
    expect(replayed.offset).toBe(10);
  });

  it("counts characters as the server does: an emoji is one", () => {
    const s = run(sent(), delta(2, "👋 "), delta(4, "é!"));
    expect(s.offset).toBe(4);
    expect(run(s, delta(4, "é!")).messages[1]?.content).toBe("👋 é!");
  });

  it("ignores a repeated done", () => {
    const done = ev({ type: "done", id: "8", message: msg("a1", "assistant", "Echo: hi") });
    const s = run(sent(), delta(8, "Echo: hi"), done);
    expect(run(s, done)).toBe(s);
  });
});

describe("stop", () => {
  it("keeps the partial reply as cancelled", () => {
    const s = run(
      sent(),
      delta(6, "Echo: "),
      { type: "stop" },
      delta(10, "half"),
      ev({ type: "done", id: "10", message: msg("a1", "assistant", "Echo: half", "cancelled") }),
    );
    expect(s.messages[1]).toMatchObject({ content: "Echo: half", status: "cancelled" });
    expect(s.phase).toBe("idle");
    expect(s.error).toBeNull();
  });

  it("marks cancelled when the server closes with a cancelled error or a bare done", () => {
    const viaError = run(sent(), delta(4, "Echo"), { type: "stop" }, ev({ type: "error", id: "4", code: "cancelled", message: "Cancelled" }));
    expect(viaError.messages[1]).toMatchObject({ content: "Echo", status: "cancelled" });
    expect(viaError.error).toBeNull();
    const bare = run(sent(), delta(4, "Echo"), { type: "stop" }, ev({ type: "done", id: "4", message: null }));
    expect(bare.messages[1]).toMatchObject({ content: "Echo", status: "cancelled" });
  });

  it("stays stopping while the last words arrive", () => {
    const s = run(sent(), { type: "stop" }, ev({ type: "start", id: "0", messageId: "a1" }), delta(1, "x"));
    expect(s.phase).toBe("stopping");
  });
});

describe("errors", () => {
  it("puts a stream error on the reply", () => {
    const s = run(sent(), delta(6, "Echo: "), ev({ type: "error", id: "6", code: "assistant_unavailable", message: "The assistant is not reachable." }));
    expect(s.messages[1]).toMatchObject({ status: "error", content: "Echo: ", errorText: "The assistant is not reachable." });
    // shown once, in the reply (which offers Retry), not again in a notice
    expect(s.error).toBeNull();
    expect(s.phase).toBe("idle");
  });

  it("drops what the server never stored when a send is refused", () => {
    const s = run(
      opened,
      { type: "send", content: "x".repeat(10), clientMessageId: "c9" },
      { type: "failed", error: { kind: "too_long", message: "Message too long", retry: null } },
    );
    expect(s.messages).toEqual([]);
    expect(s.error?.kind).toBe("too_long");
    expect(s.phase).toBe("idle");
  });

  it("keeps a started reply as interrupted when it cannot be resumed", () => {
    const s = run(sent(), delta(4, "Echo"), { type: "failed", error: { kind: "network", message: "offline", retry: { type: "resume" } } });
    expect(s.messages.map((m) => [m.content, m.status])).toEqual([
      ["hi", "complete"],
      ["Echo", "interrupted"],
    ]);
  });

  it("clears the error on the next send", () => {
    const failed = run(opened, { type: "failed", error: { kind: "busy", message: "busy", retry: null } });
    expect(run(failed, { type: "send", content: "again", clientMessageId: "c2" }).error).toBeNull();
  });
});

describe("regenerate and edit", () => {
  const finished = run(sent("first"), delta(11, "Echo: first"), ev({ type: "done", id: "11", message: msg("a1", "assistant", "Echo: first") }));

  it("regenerate replaces the last reply", () => {
    const s = run(finished, { type: "regenerate" }, ev({ type: "start", id: "0", messageId: "a2" }), delta(5, "again"));
    expect(s.messages.map((m) => [m.id, m.content])).toEqual([
      ["u1", "first"],
      ["a2", "again"],
    ]);
  });

  it("edit changes the last user message and replaces the reply", () => {
    const s = run(finished, { type: "edit", messageId: "u1", content: "second" }, ev({ type: "start", id: "0", messageId: "a3" }), delta(12, "Echo: second"));
    expect(s.messages.map((m) => [m.role, m.content])).toEqual([
      ["user", "second"],
      ["assistant", "Echo: second"],
    ]);
  });

  it("editing an earlier message makes it a new version and drops what followed from the view", () => {
    const two = run(
      finished,
      { type: "send", content: "second", clientMessageId: "c2" },
      ev({ type: "user", id: "0", message: msg("u2", "user", "second") }),
      ev({ type: "start", id: "0", messageId: "a2" }),
      ev({ type: "done", id: "6", message: msg("a2", "assistant", "Echo 2") }),
    );
    const s = run(two, { type: "edit", messageId: "u1", content: "uno" }, ev({ type: "user", id: "0", message: msg("u3", "user", "uno") }));
    expect(s.messages.map((m) => [m.id, m.content, m.sibling_index, m.sibling_count])).toEqual([
      ["u3", "uno", 2, 2],
      ["", "", undefined, undefined],
    ]);
  });

  it("regenerating a given reply keeps what came before it and counts one more version", () => {
    const s = run(finished, { type: "regenerate", messageId: "a1" });
    expect(s.messages.map((m) => [m.id, m.role])).toEqual([
      ["u1", "user"],
      ["", "assistant"],
    ]);
    expect(s.messages[1]).toMatchObject({ sibling_index: 2, sibling_count: 2 });
    const done = run(s, ev({ type: "start", id: "0", messageId: "a2" }), ev({ type: "done", id: "5", message: msg("a2", "assistant", "again") }));
    expect(done.messages[1]).toMatchObject({ id: "a2", content: "again", sibling_index: 2, sibling_count: 2 });
  });

  it("a new reply counts its characters from zero", () => {
    const s = run(finished, { type: "regenerate" });
    expect(s.offset).toBe(0);
    expect(run(s, ev({ type: "start", id: "0", messageId: "a2" }), delta(3, "new")).messages[1]?.content).toBe("new");
  });
});

describe("a reply refused because the model was not there", () => {
  it("keeps the error code of a reply that failed while the page followed it", () => {
    const failed = run(sent(), ev({ type: "error", id: "0", code: "assistant_not_ready", message: "The model is still loading." }));
    const reply = failed.messages[failed.messages.length - 1];
    expect(reply).toMatchObject({ status: "error", errorCode: "assistant_not_ready", failedHere: true });
  });

  it("reads the stored reply's error code after a reload, as not failed on this page", () => {
    const stored: Message = { ...msg("a1", "assistant", "", "error"), error: { code: "assistant_unavailable", message: "down" } };
    const loaded = run(initialChat, { type: "loaded", session: { session_id: "s1", name: "Chat", messages: [msg("u1", "user", "hi"), stored], has_more: false } });
    const reply = loaded.messages[1];
    expect(reply).toMatchObject({ errorCode: "assistant_unavailable", errorText: "down" });
    expect(reply?.failedHere).toBeUndefined();
  });

  it("is sent again by itself once, and only when it failed on this page", () => {
    const failed = run(sent(), ev({ type: "user", id: "0", message: msg("u1", "user", "hi") }), ev({ type: "error", id: "0", code: "assistant_not_ready", message: "loading" }));
    expect(replyWaitingForModel(failed)).toMatchObject({ state: "loading", userId: "u1", autoRetry: true });
    const retried = run(failed, { type: "autoRetried", userId: "u1" });
    expect(replyWaitingForModel(retried)?.autoRetry).toBe(false);
    const stored: Message = { ...msg("a1", "assistant", "", "error"), error: { code: "assistant_unavailable", message: "down" } };
    const reloaded = run(initialChat, { type: "loaded", session: { session_id: "s1", name: "Chat", messages: [msg("u1", "user", "hi"), stored], has_more: false } });
    expect(replyWaitingForModel(reloaded)).toMatchObject({ state: "unreachable", autoRetry: false });
  });
});

describe("continue a reply that stopped short", () => {
  const cut = run(initialChat, { type: "open", sessionId: "s1" }, {
    type: "loaded",
    session: { session_id: "s1", name: "Chat", messages: [msg("u1", "user", "tell"), msg("a1", "assistant", "Once upon 🕰", "length")], has_more: false },
  });

  it("appends the continuation to the same message, counting after the text already there", () => {
    const waiting = run(cut, { type: "continue", messageId: "a1" });
    expect(waiting).toMatchObject({ phase: "waiting", replyId: "a1", offset: 11 });
    // Until the server starts, the reply is still what it was (a refusal leaves it so).
    expect(waiting.messages[1]).toMatchObject({ status: "length", content: "Once upon 🕰" });
    const s = run(
      waiting,
      ev({ type: "start", id: "11", messageId: "a1" }),
      delta(13, " a"),
      delta(13, " a"), // a resumed stream repeats it: taken once
      delta(18, " time"),
    );
    expect(s.messages[1]).toMatchObject({ id: "a1", content: "Once upon 🕰 a time", status: "streaming", key: "a1" });
    const done = run(s, ev({ type: "done", id: "18", message: msg("a1", "assistant", "Once upon 🕰 a time", "length") }));
    expect(done.phase).toBe("idle");
    expect(done.messages.map((m) => [m.id, m.content, m.status])).toEqual([
      ["u1", "tell", "complete"],
      ["a1", "Once upon 🕰 a time", "length"],
    ]);
  });

  it("a refused continue leaves the reply as it was, with the server's reason", () => {
    const s = run(cut, { type: "continue", messageId: "a1" }, {
      type: "failed",
      error: { kind: "busy", message: "This reply cannot be continued.", retry: null },
    });
    expect(s.messages[1]).toMatchObject({ content: "Once upon 🕰", status: "length" });
    expect(s.error?.message).toBe("This reply cannot be continued.");
    expect(s.phase).toBe("idle");
  });

  it("is not started while another reply is being written, or for a message not shown", () => {
    const busy = run(cut, { type: "regenerate" });
    expect(run(busy, { type: "continue", messageId: "a1" })).toBe(busy);
    expect(run(cut, { type: "continue", messageId: "nope" })).toBe(cut);
  });

  it("keeps the wait the server asked for on a reply refused mid-stream", () => {
    const s = run(sent(), ev({ type: "error", id: "0", code: "rate_limited", message: "Too many replies today.", retryAfterSeconds: 3600 }));
    expect(s.messages[1]).toMatchObject({ status: "error", errorCode: "rate_limited", retryAfterSeconds: 3600 });
  });
});

describe("history paging", () => {
  const page = (ids: string[], hasMore: boolean): SessionDetail => ({
    session_id: "s1",
    name: "Chat",
    messages: ids.map((id) => msg(id, id.startsWith("u") ? "user" : "assistant", `text ${id}`)),
    has_more: hasMore,
  });
  const newest = run(initialChat, { type: "open", sessionId: "s1" }, { type: "loaded", session: page(["u3", "a3", "u4", "a4"], true) });

  it("opens on the newest page and knows older messages exist", () => {
    expect(newest).toMatchObject({ hasMore: true, older: "idle" });
    expect(newest.messages.map((m) => m.id)).toEqual(["u3", "a3", "u4", "a4"]);
  });

  it("puts an older page before the first message, until there is no more", () => {
    const loading = run(newest, { type: "olderLoading" });
    expect(loading.older).toBe("loading");
    expect(run(loading, { type: "olderLoading" })).toBe(loading); // one request at a time
    const s = run(loading, { type: "olderLoaded", before: "u3", session: page(["u1", "a1", "u2", "a2"], false) });
    expect(s.messages.map((m) => m.id)).toEqual(["u1", "a1", "u2", "a2", "u3", "a3", "u4", "a4"]);
    expect(s).toMatchObject({ hasMore: false, older: "idle" });
    expect(run(s, { type: "olderLoading" })).toBe(s); // nothing older to ask for
  });

  it("opened further back, puts newer pages after the last message until the newest", () => {
    const around = run(initialChat, { type: "open", sessionId: "s1" }, { type: "loaded", session: { ...page(["u2", "a2"], true), has_newer: true } });
    expect(around).toMatchObject({ hasNewer: true, newer: "idle" });
    const loading = run(around, { type: "newerLoading" });
    expect(run(loading, { type: "newerLoading" })).toBe(loading); // one request at a time
    const s = run(loading, { type: "newerLoaded", after: "a2", session: { ...page(["a2", "u3", "a3"], true), has_newer: false } });
    expect(s.messages.map((m) => m.id)).toEqual(["u2", "a2", "u3", "a3"]);
    expect(s).toMatchObject({ hasNewer: false, newer: "idle" });
    // A page asked for after another last message no longer fits.
    expect(run(around, { type: "newerLoaded", after: "u2", session: page(["x"], true) })).toBe(around);
    // Editing a message: what came after it leaves the path, nothing newer is left.
    expect(run(around, { type: "edit", messageId: "u2", content: "again" }).hasNewer).toBe(false);
  });

  it("never shows a message twice when a page overlaps what is shown", () => {
    const s = run(newest, { type: "olderLoading" }, { type: "olderLoaded", before: "u3", session: page(["a2", "u3", "a3"], true) });
    expect(s.messages.map((m) => m.id)).toEqual(["a2", "u3", "a3", "u4", "a4"]);
  });

  it("drops a page that arrives after another chat, or this one afresh, was opened", () => {
    const other = run(newest, { type: "olderLoading" }, { type: "open", sessionId: "s2" });
    expect(run(other, { type: "olderLoaded", before: "u3", session: page(["u1", "a1"], false) })).toBe(other);
    const reopened = run(newest, { type: "olderLoading" }, { type: "loaded", session: page(["u4", "a4"], true) });
    expect(run(reopened, { type: "olderLoaded", before: "u3", session: page(["u1", "a1"], false) })).toBe(reopened);
  });

  it("says when the older page could not be read, and can ask again", () => {
    const failed = run(newest, { type: "olderLoading" }, { type: "olderFailed", sessionId: "s1" });
    expect(failed.older).toBe("failed");
    expect(failed.messages).toEqual(newest.messages);
    expect(run(failed, { type: "olderLoading" }).older).toBe("loading");
  });
});
