import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const haven = process.env.HAVEN_URL ?? "http://127.0.0.1:3000";

/**
 * The clinic staff panel: built into `admin/dist` and served by Haven at `/admin/`
 * (`server/admin-static.ts`). In dev (`npm run dev:admin`), `/trpc` (queries, mutations and the
 * SSE feed) and `/openapi` are proxied to a running Haven at HAVEN_URL (default
 * http://127.0.0.1:3000). The Host header is passed through unchanged (`changeOrigin: false`),
 * so the browser's `Origin` equals the origin Haven sees and its CSRF check passes, and the
 * session cookie stays first-party. `@haven/client` resolves through `admin/tsconfig.json`'s
 * `paths` (the SDK's source), as `tsc -p admin` and the build do, so dev needs no SDK build.
 */
export default defineConfig({
  root: import.meta.dirname,
  base: "/admin/",
  plugins: [react()],
  resolve: { tsconfigPaths: true },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No inline script or data: module preload polyfill: the CSP allows 'self' scripts only.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    port: Number(process.env.HAVEN_ADMIN_DEV_PORT ?? 45173),
    proxy: {
      "/trpc": { target: haven, changeOrigin: false },
      "/openapi": { target: haven, changeOrigin: false },
    },
  },
});
