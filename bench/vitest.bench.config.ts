import { defineConfig } from "vitest/config";

/** `vitest bench` for bench/micro only (never part of `npm test`). */
export default defineConfig({
  test: {
    benchmark: { include: ["bench/micro/**/*.bench.ts"] },
  },
});
