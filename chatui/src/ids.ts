/** A random id for `client_message_id`, so a retried send is stored once. */
export function newClientId(): string {
  // crypto.randomUUID needs a secure context; a LAN address over plain http is not one.
  if (typeof crypto.randomUUID === "function" && globalThis.isSecureContext) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A chat's first name: the start of its first message, on one line. */
export function titleFrom(content: string, max = 48): string {
  const line = content.replace(/\s+/g, " ").trim();
  return line.length <= max ? line || "New chat" : `${line.slice(0, max - 1).trimEnd()}…`;
}
