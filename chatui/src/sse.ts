/**
 * An incremental Server-Sent Events parser (the WHATWG "event stream" format).
 *
 * The replies come from POST requests, which EventSource cannot make, so the page reads
 * the body with fetch and feeds the text here chunk by chunk. Chunks split anywhere: in
 * the middle of a line, between "\r" and "\n", or inside a multi-byte character (the
 * caller decodes with a streaming TextDecoder, so only the first three matter here).
 */

export interface SseEvent {
  /** The `event:` field, "message" when absent. */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The `id:` of this event, or the last id seen before it (as the spec's lastEventId). */
  id: string | null;
}

export class SseParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private hasData = false;
  private lastId: string | null = null;
  /** Set when a chunk ended in "\r": a following "\n" belongs to the same line break. */
  private pendingCr = false;

  /** The id of the last event that carried one: what a resume sends as Last-Event-ID. */
  get lastEventId(): string | null {
    return this.lastId;
  }

  /** Feed decoded text; returns the events completed by it. */
  push(chunk: string): SseEvent[] {
    let text = chunk;
    if (this.pendingCr && text.startsWith("\n")) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const ch = this.buffer[i];
      if (ch !== "\n" && ch !== "\r") continue;
      const line = this.buffer.slice(start, i);
      if (ch === "\r") {
        if (i + 1 === this.buffer.length) this.pendingCr = true;
        else if (this.buffer[i + 1] === "\n") i++;
      }
      start = i + 1;
      const done = this.line(line);
      if (done) events.push(done);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** The stream ended: per the spec an unterminated last event is dropped. */
  end(): SseEvent[] {
    this.buffer = "";
    this.reset();
    return [];
  }

  private line(line: string): SseEvent | null {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null; // comment: the server's heartbeat
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      default:
        break; // "retry" and unknown fields: reconnection is ours to decide
    }
    return null;
  }

  private dispatch(): SseEvent | null {
    if (!this.hasData) {
      this.reset();
      return null;
    }
    const event: SseEvent = {
      event: this.event || "message",
      data: this.data.join("\n"),
      id: this.lastId,
    };
    this.reset();
    return event;
  }

  private reset(): void {
    this.event = "";
    this.data = [];
    this.hasData = false;
  }
}

/** Read a fetch Response body as SSE events, decoding UTF-8 across chunk borders. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    finished = true;
    yield* parser.push(decoder.decode());
    parser.end();
  } finally {
    // A consumer that stops early (switching chats) closes the connection; the server
    // keeps generating and the reply can be resumed later.
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
