/** The chat list's foot: download every chat, or import a file of chats. */

import { useRef, useState } from "react";
import * as api from "../api";

export function ImportExport({ onImported }: { onImported: () => void }) {
  const input = useRef<HTMLInputElement>(null);
  const [report, setReport] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const pick = (file: File | undefined) => {
    if (!file) return;
    setBusy(true);
    setReport(null);
    api
      .importChats(file)
      .then(
        (r) => {
          const skipped = r.skipped.map((s) => `${s.name || "a chat"}: ${s.reason}`).join("; ");
          setReport(`Imported ${r.imported.length} chat${r.imported.length === 1 ? "" : "s"}.${skipped ? ` Skipped ${r.skipped.length}: ${skipped}` : ""}`);
          onImported();
        },
        (e: unknown) => setReport(e instanceof Error ? e.message : "The import failed."),
      )
      .finally(() => {
        setBusy(false);
        if (input.current) input.current.value = "";
      });
  };

  return (
    <div className="import-export">
      <a className="button ghost small" href={api.EXPORT_ALL_URL} download>
        Export all
      </a>
      <button type="button" className="button ghost small" disabled={busy} onClick={() => input.current?.click()}>
        {busy ? "Importing…" : "Import"}
      </button>
      <input
        ref={input}
        className="visually-hidden"
        type="file"
        accept="application/json,.json"
        aria-label="Import chats from a file (this app's export, or ChatGPT's conversations.json)"
        onChange={(e) => pick(e.target.files?.[0])}
      />
      {report ? (
        <p className="sidebar-note import-report" role="status">
          {report}
        </p>
      ) : null}
    </div>
  );
}
