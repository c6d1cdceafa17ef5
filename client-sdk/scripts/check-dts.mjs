// The check that keeps server internals out of @haven/client's published types (issue 11).
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * Packages the published declarations may name: the tRPC peers, superjson and zod (types of the
 * router and its transformer) and @types/fhir (module `fhir/r4`, FHIR R4 bodies).
 */
export const ALLOWED_TYPE_PACKAGES = ["@trpc/server", "@trpc/client", "superjson", "zod", "fhir"];

/** The package a module specifier belongs to (`@scope/name/sub` → `@scope/name`). */
export function packageOf(specifier) {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/** Every module specifier a declaration file imports, re-exports, `import()`s or references. */
export function specifiersIn(text) {
  const out = new Set();
  const patterns = [
    /\bfrom\s+["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
    /\bimport\s+["']([^"']+)["']/g,
    /\/\/\/\s*<reference\s+(?:types|path)\s*=\s*["']([^"']+)["']/g,
    /\bdeclare\s+module\s+["']([^"']+)["']/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) out.add(m[1]);
  return [...out];
}

/** @returns one line per forbidden specifier found in `dir`'s `.d.ts` files (empty when clean) */
export async function checkDeclarations(dir) {
  const problems = [];
  for (const name of await readdir(dir)) {
    if (!name.endsWith(".d.ts")) continue;
    const text = await readFile(join(dir, name), "utf8");
    for (const spec of specifiersIn(text)) {
      if (spec.startsWith(".")) {
        problems.push(`${name}: relative import ${spec} (declarations must be one bundled file)`);
      } else if (!ALLOWED_TYPE_PACKAGES.includes(packageOf(spec))) {
        problems.push(`${name}: ${spec}`);
      }
    }
  }
  return problems;
}
