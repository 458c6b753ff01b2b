/** The address bar names the open chat (/c/<id>), so reload and back/forward keep it. */

export function sessionIdFromPath(path: string): string | null {
  const m = /^\/c\/([^/]+)\/?$/.exec(path);
  return m?.[1] ? decodeURIComponent(m[1]) : null;
}

export function pathOf(sessionId: string | null): string {
  return sessionId ? `/c/${encodeURIComponent(sessionId)}` : "/";
}

/** A share link's page: /s/<id>, shown without the chat list or the composer. */
export function shareIdFromPath(path: string): string | null {
  const m = /^\/s\/([^/]+)\/?$/.exec(path);
  return m?.[1] ? decodeURIComponent(m[1]) : null;
}

/** A chat opened at one message (a search result): /c/<id>#m-<message id>. */
export function messagePath(sessionId: string, messageId: string | null): string {
  return messageId ? `${pathOf(sessionId)}#m-${encodeURIComponent(messageId)}` : pathOf(sessionId);
}
