import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The page is served by nginx under a Content-Security-Policy without 'unsafe-inline':
// everything must ship as external files, so no inlined module-preload polyfill either.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  server: {
    // `npm run dev` against a local stack: the API lives on the same origin in production.
    proxy: { "/api": { target: "http://127.0.0.1:81" } },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
  },
});
