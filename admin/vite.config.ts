import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/**
 * The clinic staff panel: built into `admin/dist` and served by Haven at `/admin/`
 * (`server/admin-static.ts`). In dev, `/trpc` is proxied to a running Haven (HAVEN_URL, default
 * http://127.0.0.1:3000) so the session cookie stays first-party.
 */
export default defineConfig({
  root: import.meta.dirname,
  base: "/admin/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No inline script or data: module preload polyfill: the CSP allows 'self' scripts only.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    port: 45173,
    proxy: {
      "/trpc": { target: process.env.HAVEN_URL ?? "http://127.0.0.1:3000", changeOrigin: false },
    },
  },
});
