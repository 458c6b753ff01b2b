/** The address bar names the open chat (/c/<id>), so reload and back/forward keep it. */

export function sessionIdFromPath(path: string): string | null {
  const m = /^\/c\/([^/]+)\/?$/.exec(path);
  return m?.[1] ? decodeURIComponent(m[1]) : null;
}

export function pathOf(sessionId: string | null): string {
  return sessionId ? `/c/${encodeURIComponent(sessionId)}` : "/";
}
