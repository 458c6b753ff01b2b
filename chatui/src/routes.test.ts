import { describe, expect, it } from "vitest";
import { messagePath, pathOf, sessionIdFromPath, shareIdFromPath } from "./routes";

describe("routes", () => {
  it("names a share link's page by its id", () => {
    expect(shareIdFromPath("/s/abc_DEF-123")).toBe("abc_DEF-123");
    expect(shareIdFromPath("/s/abc/")).toBe("abc");
    expect(shareIdFromPath("/s/")).toBeNull();
    expect(shareIdFromPath("/c/abc")).toBeNull();
    expect(sessionIdFromPath("/s/abc")).toBeNull();
  });

  it("opens a chat at a message with the message in the fragment", () => {
    expect(messagePath("s1", "m 2")).toBe(`${pathOf("s1")}#m-m%202`);
    expect(messagePath("s1", null)).toBe(pathOf("s1"));
  });
});
