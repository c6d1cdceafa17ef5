// Builds @haven/client into dist/: ESM JavaScript (esbuild) and ONE bundled declaration file
// (rollup-plugin-dts, which picks up @typescript/typescript6 — TypeScript 6's JS compiler API —
// from this workspace's devDependencies: TypeScript 7 has no JS compiler API; ADR 0011). Then fails if the declarations name any package outside the allowed
// type dependencies (no server internals: drizzle-orm, postgres, pglite, lucia, pino, …).
import { rm } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { rollup } from "rollup";
import { dts } from "rollup-plugin-dts";
import { checkDeclarations } from "./check-dts.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dist = resolve(root, "dist");
const pkg = (await import(resolve(root, "package.json"), { with: { type: "json" } })).default;
const external = [
  ...Object.keys(pkg.peerDependencies ?? {}),
  ...Object.keys(pkg.dependencies ?? {}),
];

await rm(dist, { recursive: true, force: true });

await build({
  entryPoints: [resolve(root, "index.ts")],
  outfile: resolve(dist, "index.js"),
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  sourcemap: false,
  legalComments: "none",
  // Peers and dependencies stay imports; `import type` of the server is erased.
  external: external.flatMap((name) => [name, `${name}/*`]),
  logLevel: "warning",
});

const bundle = await rollup({
  input: resolve(root, "index.ts"),
  // Every bare import stays external: types of @trpc/*, superjson, zod are referenced, not copied.
  external: (id) => !id.startsWith(".") && !id.startsWith("/"),
  plugins: [dts({ tsconfig: resolve(root, "tsconfig.build.json") })],
  onwarn(warning, warn) {
    if (warning.code === "UNUSED_EXTERNAL_IMPORT") return;
    warn(warning);
  },
});
await bundle.write({ file: resolve(dist, "index.d.ts"), format: "es" });
await bundle.close();

const problems = await checkDeclarations(dist);
if (problems.length > 0) {
  console.error(
    `dist declarations reference packages outside the allowed list:\n${problems.join("\n")}`,
  );
  process.exit(1);
}
console.log(
  "built client-sdk/dist (index.js, index.d.ts); declarations reference only allowed packages",
);
