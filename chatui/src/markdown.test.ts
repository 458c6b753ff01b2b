// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { renderMarkdown } from "./markdown";

function dom(markdown: string): HTMLElement {
  const div = document.createElement("div");
  div.innerHTML = renderMarkdown(markdown);
  return div;
}

describe("renderMarkdown", () => {
  it("renders GitHub-flavoured markdown: tables, lists, task lists, strikethrough", () => {
    const el = dom("| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- [x] done\n\n~~old~~ **new**");
    expect(el.querySelectorAll("table td")).toHaveLength(2);
    expect(el.querySelectorAll("li")).toHaveLength(2);
    const box = el.querySelector("input");
    expect(box?.getAttribute("type")).toBe("checkbox");
    expect(box?.hasAttribute("disabled")).toBe(true);
    expect(el.querySelector("del")?.textContent).toBe("old");
    expect(el.querySelector("strong")?.textContent).toBe("new");
  });

  it("highlights fenced code and adds a copy button", () => {
    const el = dom("```python\ndef f():\n    return 1\n```");
    expect(el.querySelector(".code-lang")?.textContent).toBe("python");
    expect(el.querySelector("pre code .hljs-keyword")?.textContent).toBe("def");
    expect(el.querySelector("button.copy-code")).not.toBeNull();
    expect(el.querySelector("pre code")?.textContent).toBe("def f():\n    return 1");
  });

  it("shows code in an unknown language as escaped text", () => {
    const el = dom("```brainfuck\n<b>+</b>\n```");
    expect(el.querySelector("pre code")?.textContent).toBe("<b>+</b>");
    expect(el.querySelector("pre b")).toBeNull();
  });

  it("shows raw HTML as text: scripts, event handlers and styles never become elements", () => {
    const payloads = [
      "<script>alert(1)</script>",
      '<img src=x onerror="alert(1)">',
      "hello <b onmouseover=alert(1)>bold</b>",
      "<style>body{display:none}</style>",
      '<iframe src="javascript:alert(1)"></iframe>',
      '<svg onload="alert(1)"></svg>',
    ];
    for (const p of payloads) {
      const el = dom(p);
      expect(el.querySelector("script, img, iframe, svg, style, [onerror], [onload], [onmouseover]")).toBeNull();
      expect(el.textContent).toContain(p.replace(/^hello /, "").slice(0, 8));
    }
  });

  it("turns images into links (no request to a URL the model chose)", () => {
    const el = dom("![cat](https://example.com/cat.png)");
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector("a")?.getAttribute("href")).toBe("https://example.com/cat.png");
  });

  it("strips script URLs from links and opens links safely", () => {
    const el = dom("[click](javascript:alert(1)) and [ok](https://example.com)");
    const [bad, good] = Array.from(el.querySelectorAll("a"));
    expect(bad?.getAttribute("href") ?? "").not.toMatch(/javascript/i);
    expect(good?.getAttribute("href")).toBe("https://example.com");
    expect(good?.getAttribute("rel")).toBe("noopener noreferrer nofollow");
    expect(good?.getAttribute("target")).toBe("_blank");
  });

  it("keeps no inline style attribute (the page runs under a strict CSP)", () => {
    expect(dom("| a |\n|:-:|\n| b |").querySelector("[style]")).toBeNull();
  });
});
