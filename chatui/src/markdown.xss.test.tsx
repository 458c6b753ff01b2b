// @vitest-environment jsdom
/**
 * Model output is hostile input: every vector of xss-corpus.json (also sent through the real
 * stack by tests/e2e/test_ui_hostile_output.py) is rendered by the Markdown component into
 * this jsdom document, whose inline handlers do run (vitest's jsdom runs scripts), and then
 * checked for what could run or leak.
 */
import { flushSync } from "react-dom";
import { createRoot } from "react-dom/client";
import { afterEach, describe, expect, it } from "vitest";
import { Markdown } from "./components/Markdown";
import corpus from "./xss-corpus.json";

const FORBIDDEN_TAGS = [
  "script", "iframe", "frame", "object", "embed", "applet", "style", "link", "base", "meta", "form", "img",
  "svg", "math", "template", "noscript", "textarea", "select", "video", "audio", "source", "details", "xmp",
  "noembed", "body",
];
/** Attributes that load or run a URL (all but href, which is checked for its scheme). */
const URL_ATTRIBUTES = ["src", "srcdoc", "action", "formaction", "data", "poster", "background", "xlink:href", "style"];
const RASTER_DATA = /^data:image\/(png|gif|jpe?g|webp);/i;
/** Events that fire the inline handlers the corpus tries to smuggle in. */
const EVENTS = ["load", "error", "click", "mouseover", "focus", "toggle", "animationstart", "start", "pointerenter"];

/**
 * Run `expression` where inline handlers run: jsdom's own global, which this test's `window`
 * (Node's global, filled by vitest) is not. The result comes back through the DOM.
 */
function inPage(expression: string): string {
  const probe = document.createElement("span");
  probe.setAttribute("onclick", `this.setAttribute("data-result", String(${expression}))`);
  document.body.append(probe);
  probe.click();
  probe.remove();
  return probe.getAttribute("data-result") ?? "(did not run)";
}
const canary = () => inPage(`window.${corpus.canary}`);

/** Why this rendered reply is unsafe: an empty list when it is not. */
function violations(root: HTMLElement): string[] {
  const found: string[] = [];
  for (const el of Array.from(root.querySelectorAll("*"))) {
    const tag = el.tagName.toLowerCase();
    if (FORBIDDEN_TAGS.includes(tag)) found.push(`<${tag}>`);
    for (const { name, value } of Array.from(el.attributes)) {
      if (name.toLowerCase().startsWith("on")) found.push(`<${tag} ${name}>`);
      if (URL_ATTRIBUTES.includes(name.toLowerCase())) found.push(`<${tag} ${name}="${value}">`);
      if (name.toLowerCase() === "href" && !safeUrl(value)) found.push(`<${tag} href="${value}">`);
    }
  }
  return found;
}

/** http(s), mailto, a raster data: image, or relative to this page: what the browser would do. */
function safeUrl(value: string): boolean {
  if (RASTER_DATA.test(value.trim())) return true;
  const url = new URL(value, document.baseURI);
  return ["http:", "https:", "mailto:"].includes(url.protocol);
}

/** Fire every event a handler could wait for, on every element, and click every link. */
function provoke(root: HTMLElement): void {
  for (const el of Array.from(root.querySelectorAll("*"))) {
    for (const type of EVENTS) el.dispatchEvent(new Event(type, { bubbles: false }));
    el.dispatchEvent(new MouseEvent("click", { bubbles: true, cancelable: true }));
  }
}

let container: HTMLElement | null = null;

function mount(html: string): HTMLElement {
  container = document.createElement("div");
  document.body.append(container);
  container.innerHTML = html;
  return container;
}

function render(text: string): HTMLElement {
  container = document.createElement("div");
  document.body.append(container);
  const root = createRoot(container);
  flushSync(() => root.render(<Markdown text={text} />));
  return container;
}

afterEach(() => {
  container?.remove();
  container = null;
  inPage(`delete window.${corpus.canary}`);
});

describe("the XSS corpus", () => {
  it("is large and covers every family of vector", () => {
    expect(corpus.vectors.length).toBeGreaterThanOrEqual(100);
    expect(new Set(corpus.vectors.map((v) => v.category))).toEqual(
      new Set(["link", "html", "mutation", "image", "autolink", "reference", "code", "structure"]),
    );
    expect(new Set(corpus.vectors.map((v) => v.id)).size).toBe(corpus.vectors.length);
  });

  it("is caught by these checks when it reaches the page unsanitized", () => {
    // The checks must be able to fail: raw vectors in the same document trip them.
    const raw = mount('<img src=x onerror="window.__xss=1"><a href="javascript:window.__xss=1">x</a><iframe srcdoc="x"></iframe>');
    expect(violations(raw)).toEqual(
      expect.arrayContaining(["<img>", "<img onerror>", '<a href="javascript:window.__xss=1">', "<iframe>", '<iframe srcdoc="x">']),
    );
    provoke(raw);
    expect(canary()).toBe("1");
  });
});

describe.each(corpus.vectors.map((v) => [v.id, v.markdown] as const))("vector %s", (_id, markdown) => {
  it("renders nothing that runs, loads or navigates to a script", () => {
    const el = render(markdown);
    expect(violations(el)).toEqual([]);
    provoke(el);
    expect(canary()).toBe("undefined");
    for (const a of Array.from(el.querySelectorAll("a"))) {
      expect(a.getAttribute("rel")).toBe("noopener noreferrer nofollow");
      expect(a.getAttribute("target")).toBe("_blank");
    }
  });
});

describe("links that are fine", () => {
  it("keep their target and open in a new tab without opener, referrer or endorsement", () => {
    const el = render("[site](https://ok.example/a?b=1) [plain](http://ok.example/) [mail](mailto:me@ok.example) <https://ok.example/auto>");
    const links = Array.from(el.querySelectorAll("a")).map((a) => [a.getAttribute("href"), a.rel, a.target]);
    expect(links).toEqual([
      ["https://ok.example/a?b=1", "noopener noreferrer nofollow", "_blank"],
      ["http://ok.example/", "noopener noreferrer nofollow", "_blank"],
      ["mailto:me@ok.example", "noopener noreferrer nofollow", "_blank"],
      ["https://ok.example/auto", "noopener noreferrer nofollow", "_blank"],
    ]);
  });

  it("other schemes and addresses inside this site lose their target", () => {
    const hrefs = ["tel:+100", "ftp://ok.example/", "file:///etc/passwd", "blob:https://ok.example/x", "intent://x#Intent;end", "/api/sessions", "#top", "//ok.example/"];
    const el = render(hrefs.map((h, i) => `[l${i}](<${h}>)`).join(" "));
    expect(Array.from(el.querySelectorAll("a")).map((a) => a.getAttribute("href"))).toEqual(hrefs.map(() => null));
  });

  it("a refused link keeps its text, with no target to follow", () => {
    const el = render("[read this](javascript:window.__xss=1) and [this](/api/sessions)");
    const links = Array.from(el.querySelectorAll("a"));
    expect(links.map((a) => [a.textContent, a.hasAttribute("href")])).toEqual([
      ["read this", false],
      ["this", false],
    ]);
  });
});
