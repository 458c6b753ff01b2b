/**
 * Reply text → safe HTML: GitHub-flavoured markdown (marked), code highlighted
 * (highlight.js core with a few languages), then sanitized (DOMPurify, allow-list).
 *
 * Model output is untrusted. Raw HTML in a reply is shown as text, never parsed; images
 * become links (an <img> would fetch a URL the model chose: a tracking or exfiltration
 * channel); a link keeps its target only when it is an absolute http(s) or mailto URL
 * (isSafeHref), and opens in a new tab without an opener or referrer. The result carries no
 * inline style or handler, so it also runs under a strict CSP.
 */

import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import diff from "highlight.js/lib/languages/diff";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import { Marked, type Tokens } from "marked";

const LANGUAGES = { bash, c, cpp, css, diff, go, java, javascript, json, python, rust, sql, typescript, xml, yaml };
for (const [name, lang] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, lang);

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function highlighted(code: string, lang: string): string {
  if (lang && hljs.getLanguage(lang)) return hljs.highlight(code, { language: lang, ignoreIllegals: true }).value;
  return escapeHtml(code);
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    // Raw HTML from the model is text to show, not markup to run.
    html({ text }: Tokens.HTML | Tokens.Tag): string {
      return escapeHtml(text);
    },
    image({ href, text }: Tokens.Image): string {
      const label = `Image: ${escapeHtml(text || href)}`;
      return `<a href="${escapeHtml(href)}">${label}</a>`;
    },
    code({ text, lang }: Tokens.Code): string {
      const language = (lang ?? "").trim().split(/\s+/)[0]?.toLowerCase() ?? "";
      const name = language ? `<span class="code-lang">${escapeHtml(language)}</span>` : "<span></span>";
      return (
        `<div class="code-block"><div class="code-head">${name}` +
        `<button type="button" class="copy-code" aria-label="Copy code">Copy</button></div>` +
        `<pre><code class="hljs">${highlighted(text, language)}</code></pre></div>\n`
      );
    },
  },
});

const ALLOWED_TAGS = [
  "a", "b", "blockquote", "br", "button", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
  "hr", "i", "input", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "table", "tbody", "td",
  "th", "thead", "tr", "ul",
];
const ALLOWED_ATTR = ["href", "title", "class", "type", "aria-label", "checked", "disabled", "align", "start"];

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

/**
 * Whether a link may point to this URL. Parsed with the WHATWG URL parser, the one the
 * browser uses on click, so what is checked is what would be followed: controls and
 * whitespace the browser ignores, mixed case and encodings all land in `protocol`. A
 * relative URL is refused too: it would point into this site, which no reply needs.
 */
function isSafeHref(value: string): boolean {
  try {
    return SAFE_PROTOCOLS.has(new URL(value).protocol);
  } catch {
    return false;
  }
}

const purify = DOMPurify();
purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    if (!isSafeHref(node.getAttribute("href") ?? "")) node.removeAttribute("href");
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
  if (node.tagName === "INPUT") {
    // Only GFM task-list checkboxes are produced: show them, never let them change.
    node.setAttribute("type", "checkbox");
    node.setAttribute("disabled", "");
  }
});

export function renderMarkdown(text: string): string {
  const html = marked.parse(text, { async: false });
  return purify.sanitize(html, { ALLOWED_TAGS, ALLOWED_ATTR, ALLOW_DATA_ATTR: false, ALLOW_ARIA_ATTR: false });
}
