import { describe, expect, it } from "vitest";
import { SseParser, readSse, type SseEvent } from "./sse";

function parseAll(chunks: string[]): SseEvent[] {
  const parser = new SseParser();
  return chunks.flatMap((c) => parser.push(c));
}

function bodyOf(parts: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const p of parts) controller.enqueue(p);
      controller.close();
    },
  });
}

describe("SseParser", () => {
  it("parses named events with ids and JSON data", () => {
    const events = parseAll([
      'id: 1\nevent: start\ndata: {"message_id":"m1"}\n\n',
      'id: 2\nevent: delta\ndata: {"text":"Hi"}\n\n',
    ]);
    expect(events).toEqual([
      { event: "start", data: '{"message_id":"m1"}', id: "1" },
      { event: "delta", data: '{"text":"Hi"}', id: "2" },
    ]);
  });

  it("joins events split at every possible position", () => {
    const text = 'id: 7-0\r\nevent: delta\r\ndata: {"text":"a b"}\r\n\r\n: ping\r\n\r\nevent: done\ndata: {}\n\n';
    const whole = parseAll([text]);
    expect(whole.map((e) => e.event)).toEqual(["delta", "done"]);
    for (let cut = 0; cut <= text.length; cut++) {
      expect(parseAll([text.slice(0, cut), text.slice(cut)])).toEqual(whole);
    }
    expect(parseAll(text.split(""))).toEqual(whole);
  });

  it("ignores comments (heartbeats) and events without data", () => {
    expect(parseAll([": heartbeat\n\n", "event: delta\n\n", ":\n\n"])).toEqual([]);
  });

  it("joins multi-line data and keeps a space after the first one only", () => {
    const [e] = parseAll(["data:  two spaces\ndata:x\n\n"]);
    expect(e?.data).toBe(" two spaces\nx");
    expect(e?.event).toBe("message");
  });

  it("carries the last id forward and exposes it for resume", () => {
    const parser = new SseParser();
    const events = parser.push("id: 5\ndata: a\n\ndata: b\n\n");
    expect(events.map((e) => e.id)).toEqual(["5", "5"]);
    expect(parser.lastEventId).toBe("5");
  });

  it("drops an unterminated last event (a connection cut mid-event)", () => {
    const parser = new SseParser();
    expect(parser.push('event: delta\ndata: {"text":"cut')).toEqual([]);
    expect(parser.end()).toEqual([]);
  });

  it("handles a lone CR line break split across chunks", () => {
    expect(parseAll(["data: a\r", "\r", "data: b\r\r"]).map((e) => e.data)).toEqual(["a", "b"]);
  });
});

describe("readSse", () => {
  it("decodes UTF-8 split inside a character", async () => {
    const bytes = new TextEncoder().encode('event: delta\ndata: {"text":"héllo 👋"}\n\n');
    const parts = [bytes.slice(0, 22), bytes.slice(22, 31), bytes.slice(31)];
    const events: SseEvent[] = [];
    for await (const e of readSse(bodyOf(parts))) events.push(e);
    expect(events).toHaveLength(1);
    expect(JSON.parse(events[0]!.data)).toEqual({ text: "héllo 👋" });
  });

  it("cancels the body when the consumer stops early", async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new TextEncoder().encode("data: x\n\n"));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const e of readSse(body)) {
      expect(e.data).toBe("x");
      break;
    }
    expect(cancelled).toBe(true);
  });
});
