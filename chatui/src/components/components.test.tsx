// @vitest-environment jsdom
/** What the person sees of a reply cut short, a refusal with a wait, and history paging. */
import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Catalogue, MessageStatus } from "../api";
import { initialChat, type ChatMessage, type ChatState } from "../chatState";
import { AssistantMessage } from "./AssistantMessage";
import { ErrorNotice } from "./ErrorNotice";
import { ModelPicker } from "./ModelPicker";
import { SiblingSwitch } from "./SiblingSwitch";
import { Thread } from "./Thread";

// React's act() outside a test renderer: tell it this is a test environment.
(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let root: Root | null = null;
let container: HTMLElement;

function show(node: React.ReactNode): HTMLElement {
  container = document.createElement("div");
  document.body.append(container);
  root = createRoot(container);
  act(() => root?.render(node));
  return container;
}

afterEach(() => {
  act(() => root?.unmount());
  root = null;
  container.remove();
});

const reply = (status: MessageStatus, extra: Partial<ChatMessage> = {}): ChatMessage => ({
  key: "a1",
  id: "a1",
  role: "assistant",
  content: "Once upon a time",
  status,
  ...extra,
});

function buttons(el: HTMLElement): string[] {
  return Array.from(el.querySelectorAll("button")).map((b) => b.getAttribute("aria-label") ?? b.textContent ?? "");
}

describe("a reply that stopped short", () => {
  it("says it was cut at the length limit and offers Continue", () => {
    const onContinue = vi.fn();
    const el = show(<AssistantMessage message={reply("length")} live={false} phase="idle" canRegenerate onRegenerate={() => undefined} onContinue={onContinue} />);
    expect(el.querySelector(".msg-note")?.textContent).toContain("Cut at the length limit");
    const button = Array.from(el.querySelectorAll("button")).find((b) => b.textContent === "Continue");
    act(() => button?.click());
    expect(onContinue).toHaveBeenCalledTimes(1);
  });

  it("offers Continue for stopped and interrupted replies too, only on the last reply", () => {
    for (const status of ["cancelled", "interrupted"] as const) {
      const el = show(<AssistantMessage message={reply(status)} live={false} phase="idle" canRegenerate onRegenerate={() => undefined} onContinue={() => undefined} />);
      expect(buttons(el)).toContain("Continue");
      act(() => root?.unmount());
      container.remove();
    }
    const older = show(<AssistantMessage message={reply("length")} live={false} phase="idle" canRegenerate={false} onRegenerate={() => undefined} onContinue={() => undefined} />);
    expect(buttons(older)).not.toContain("Continue");
  });

  it("does not offer Continue for a finished reply, nor while it is being continued", () => {
    const done = show(<AssistantMessage message={reply("complete")} live={false} phase="idle" canRegenerate onRegenerate={() => undefined} onContinue={() => undefined} />);
    expect(buttons(done)).not.toContain("Continue");
    act(() => root?.unmount());
    container.remove();
    const going = show(<AssistantMessage message={reply("length")} live phase="waiting" canRegenerate={false} onRegenerate={() => undefined} onContinue={() => undefined} />);
    expect(buttons(going)).not.toContain("Continue");
    expect(going.querySelector(".msg-note")?.textContent).toBe("Continuing…");
    expect(going.querySelector(".markdown")?.textContent?.trim()).toBe("Once upon a time");
  });
});

describe("a reply waiting for the model", () => {
  it("says how many wait before it until its first text", () => {
    const queued = { ...reply("streaming"), content: "", queuePosition: 2 };
    const el = show(<AssistantMessage message={queued} live phase="waiting" canRegenerate={false} onRegenerate={() => undefined} onContinue={() => undefined} />);
    expect(el.querySelector(".typing")?.textContent).toBe("Waiting for the model: 2 ahead of you");
    act(() => root?.unmount());
    container.remove();
    const next = show(<AssistantMessage message={{ ...queued, queuePosition: 0 }} live phase="waiting" canRegenerate={false} onRegenerate={() => undefined} onContinue={() => undefined} />);
    expect(next.querySelector(".typing")?.textContent).toBe("Waiting for the model: you are next");
    act(() => root?.unmount());
    container.remove();
    const writing = show(<AssistantMessage message={{ ...queued, content: "Once" }} live phase="streaming" canRegenerate={false} onRegenerate={() => undefined} onContinue={() => undefined} />);
    expect(writing.textContent).not.toContain("Waiting for the model");
  });
});

describe("waits the server asked for", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("the notice shows the server's words and counts down to when sending works again", () => {
    const el = show(
      <ErrorNotice
        error={{ kind: "rate_limited", message: "You sent 20 messages this minute.", retry: null, retryAfterSeconds: 2 }}
        onRetry={() => undefined}
        onDismiss={() => undefined}
      />,
    );
    expect(el.textContent).toContain("You sent 20 messages this minute. You can try again in 2 s.");
    expect(buttons(el)).toEqual(["Dismiss"]);
    act(() => vi.advanceTimersByTime(1000));
    expect(el.textContent).toContain("You can try again in 1 s.");
    act(() => vi.advanceTimersByTime(1000));
    expect(el.textContent).toContain("You can try again now.");
  });

  it("a new refusal starts the count again, even with the same wait", () => {
    const error = { kind: "rate_limited" as const, message: "Limit.", retry: null, retryAfterSeconds: 2 };
    const notice = (e: typeof error) => <ErrorNotice error={e} onRetry={() => undefined} onDismiss={() => undefined} />;
    const el = show(notice(error));
    act(() => vi.advanceTimersByTime(1000));
    act(() => vi.advanceTimersByTime(1000));
    expect(el.textContent).toContain("You can try again now.");
    act(() => root?.render(notice({ ...error })));
    expect(el.textContent).toContain("You can try again in 2 s.");
  });

  it("a long wait reads in minutes, a daily one as a time of day", () => {
    const minutes = show(<ErrorNotice error={{ kind: "rate_limited", message: "Limit.", retry: null, retryAfterSeconds: 600 }} onRetry={() => undefined} onDismiss={() => undefined} />);
    expect(minutes.textContent).toContain("You can try again in 10 min.");
    act(() => root?.unmount());
    container.remove();
    const later = show(<ErrorNotice error={{ kind: "rate_limited", message: "Limit.", retry: null, retryAfterSeconds: 7200 }} onRetry={() => undefined} onDismiss={() => undefined} />);
    expect(later.textContent).toMatch(/You can try again at \d{1,2}:\d{2}/);
  });

  it("a reply refused mid-stream for a limit shows the wait under it", () => {
    const failed = reply("error", { content: "", errorText: "Too many replies today.", errorCode: "rate_limited", retryAfterSeconds: 30 });
    const el = show(<AssistantMessage message={failed} live={false} phase="idle" canRegenerate onRegenerate={() => undefined} onContinue={() => undefined} />);
    expect(el.querySelector(".msg-note")?.textContent).toContain("Too many replies today. You can try again in 30 s.");
  });
});

describe("older messages", () => {
  const chat = (over: Partial<ChatState>): ChatState => ({
    ...initialChat,
    sessionId: "s1",
    messages: [{ key: "u1", id: "u1", role: "user", content: "hi", status: "complete" }],
    ...over,
  });
  const thread = (state: ChatState, onLoadOlder = vi.fn()) => (
    <Thread
      chat={state}
      onEdit={() => undefined}
      onRegenerate={() => undefined}
      onRegenerateWith={() => undefined}
      onContinue={() => undefined}
      onLoadOlder={onLoadOlder}
      empty={null}
      catalogue={{ models: [], default: null }}
    />
  );

  it("shows a line while they load, and a way to ask again when they could not be read", () => {
    const loading = show(thread(chat({ hasMore: true, older: "loading" })));
    expect(loading.querySelector(".older-line")?.textContent).toBe("Loading older messages…");
    act(() => root?.unmount());
    container.remove();
    const onLoadOlder = vi.fn();
    const failed = show(thread(chat({ hasMore: true, older: "failed" }), onLoadOlder));
    act(() => failed.querySelector<HTMLButtonElement>(".older-line button")?.click());
    expect(onLoadOlder).toHaveBeenCalledTimes(1);
  });

  it("asks for them when the first page is too short to scroll up to", () => {
    const onLoadOlder = vi.fn();
    show(thread(chat({ hasMore: true }), onLoadOlder)); // jsdom lays nothing out: no scrolling
    expect(onLoadOlder).toHaveBeenCalledTimes(1);
    act(() => root?.unmount());
    container.remove();
    const none = vi.fn();
    show(thread(chat({ hasMore: false }), none));
    expect(none).not.toHaveBeenCalled();
  });
});

describe("models", () => {
  const catalogue: Catalogue = {
    default: "alpha",
    models: [
      { id: "alpha", display_name: "Alpha", provider: "local", context_length: 2048, ready: true, default: true },
      { id: "beta", display_name: "Beta", provider: "openai", context_length: null, ready: false, default: false },
    ],
  };

  it("marks a model that is not ready, keeps it selectable, and starts on the default", () => {
    const onChange = vi.fn();
    const el = show(<ModelPicker catalogue={catalogue} value={null} onChange={onChange} />);
    const select = el.querySelector("select") as HTMLSelectElement;
    expect(select.value).toBe("alpha");
    const options = [...select.options].map((o) => [o.textContent, o.disabled]);
    expect(options).toEqual([
      ["Alpha", false],
      ["Beta (not ready)", false],
    ]);
    act(() => {
      select.value = "beta";
      select.dispatchEvent(new Event("change", { bubbles: true }));
    });
    expect(onChange).toHaveBeenCalledWith("beta");
  });

  it("shows a chat's model the catalogue no longer lists", () => {
    const el = show(<ModelPicker catalogue={catalogue} value="gone" onChange={() => undefined} />);
    expect((el.querySelector("select") as HTMLSelectElement).value).toBe("gone");
  });

  it("says under a reply which model wrote it and what it cost", () => {
    const message: ChatMessage = {
      key: "a1",
      id: "a1",
      role: "assistant",
      content: "hi",
      status: "complete",
      model: "beta",
      usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
    };
    const el = show(
      <AssistantMessage message={message} live={false} phase="idle" canRegenerate onRegenerate={() => undefined} onContinue={() => undefined} catalogue={catalogue} onRegenerateWith={() => undefined} />,
    );
    expect(el.querySelector(".msg-meta")?.textContent).toBe("Beta · 7 tokens (5 prompt, 2 reply)");
    expect(el.querySelector("select[aria-label='Regenerate with another model']")).not.toBeNull();
  });
});

describe("the versions of a message", () => {
  const message = (index: number, count: number): ChatMessage => ({
    key: "u1",
    id: "u1",
    role: "user",
    content: "hi",
    status: "complete",
    sibling_index: index,
    sibling_count: count,
  });

  it("shows ‹ 2 / 3 › and asks for the neighbour it points to", () => {
    const onSwitch = vi.fn();
    const el = show(<SiblingSwitch message={message(2, 3)} disabled={false} onSwitch={onSwitch} />);
    expect(el.textContent).toBe("‹2 / 3›");
    act(() => el.querySelector<HTMLButtonElement>('[aria-label="Next version"]')?.click());
    act(() => el.querySelector<HTMLButtonElement>('[aria-label="Previous version"]')?.click());
    expect(onSwitch.mock.calls).toEqual([[3], [1]]);
  });

  it("shows nothing for a message with one version, and cannot go past the ends", () => {
    expect(show(<SiblingSwitch message={message(1, 1)} disabled={false} onSwitch={() => undefined} />).textContent).toBe("");
    act(() => root?.unmount());
    container.remove();
    const el = show(<SiblingSwitch message={message(1, 2)} disabled={false} onSwitch={() => undefined} />);
    expect(el.querySelector<HTMLButtonElement>('[aria-label="Previous version"]')?.disabled).toBe(true);
    expect(el.querySelector<HTMLButtonElement>('[aria-label="Next version"]')?.disabled).toBe(false);
  });
});
