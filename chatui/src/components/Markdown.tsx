/** A reply rendered as sanitized markdown; code blocks get a working Copy button. */

import { memo, useMemo, type MouseEvent } from "react";
import { copyText } from "../clipboard";
import { renderMarkdown } from "../markdown";

function onClick(e: MouseEvent<HTMLDivElement>): void {
  // Buttons inside the generated HTML cannot carry handlers (the sanitizer removes them
  // and the CSP forbids inline ones), so one delegated listener serves them all.
  const target = e.target as HTMLElement;
  const button = target.closest<HTMLButtonElement>("button.copy-code");
  if (!button) return;
  const code = button.closest(".code-block")?.querySelector("code")?.textContent ?? "";
  void copyText(code).then((ok) => {
    button.textContent = ok ? "Copied" : "Copy failed";
    window.setTimeout(() => (button.textContent = "Copy"), 1500);
  });
}

export const Markdown = memo(function Markdown({ text }: { text: string }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  // The HTML comes from renderMarkdown, which escapes raw HTML and sanitizes the result. The
  // click listener only serves the Copy buttons inside, which keyboards reach as buttons.
  return (
    // biome-ignore lint/a11y/noStaticElementInteractions: see above
    // biome-ignore lint/a11y/useKeyWithClickEvents: see above
    // biome-ignore lint/security/noDangerouslySetInnerHtml: see above
    <div className="markdown" onClick={onClick} dangerouslySetInnerHTML={{ __html: html }} />
  );
});
