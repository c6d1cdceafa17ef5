/**
 * A small import-graph check of Haven's layering (ARCHITECTURE §1, docs/architecture.md).
 *
 * It reads every TypeScript file git would see under the product folders, extracts static
 * `import … from`, `export … from` and `import("…")` specifiers with a comment/string-aware
 * scanner, resolves relative ones to repository paths, and classifies each file into a layer.
 * Imports must point down: consumers -> entry points (CLIs, main) -> HTTP edge -> routers ->
 * tRPC core -> domains -> infrastructure (crypto, mail, service deps) -> kernel/platform -> db.
 *
 * Test code (`*.test.ts`, `server/test/**`, `** /test/**`, `test-utils.ts`, `fixtures.ts`), bench/ and
 * e2e/ are exempt from the layering rules: a test may start a whole Haven through the harness.
 *
 * Used by `architecture.test.ts` (run by `npm test`) and by `npx tsx server/test/architecture.ts`,
 * which prints the counts (upward imports, domain pairs, largest file and function).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative, sep } from "node:path";

/** Layer of a file; a higher rank may import a lower or equal one, never a higher one. */
export type Layer =
  | "db"
  | "kernel"
  | "infra"
  | "domain"
  | "rpc"
  | "router"
  | "transport"
  | "entry"
  | "consumer";

const RANK: Record<Layer, number> = {
  db: 0,
  kernel: 1,
  infra: 2,
  domain: 3,
  rpc: 4,
  router: 5,
  transport: 6,
  entry: 7,
  consumer: 8,
};

/** Files at the server root that every layer may use (leaf modules with no server imports). */
const PLATFORM_FILES = new Set(["server/config.ts", "server/cli.ts", "server/metrics.ts"]);
/**
 * The tRPC core: builders, the access middleware, the request context, the wire types the SDK
 * shares (`api-boundary.ts`) and the output validator of tracked subscriptions.
 */
const RPC_FILES = new Set([
  "server/trpc.ts",
  "server/context.ts",
  "server/api-boundary.ts",
  "server/tracked-iterable.ts",
]);
/** Server files the SDK may import, and only for types: the router type and the wire types. */
const SDK_TYPE_SOURCES = new Set(["server/router.ts", "server/api-boundary.ts"]);
/**
 * The HTTP edge and the wiring of a whole server: Fastify setup, the admin panel's static files,
 * the security headers hook, and the REST/OpenAPI door (`server/openapi/`, a second transport over
 * the same procedures).
 */
const TRANSPORT_FILES = new Set([
  "server/http.ts",
  "server/app.ts",
  "server/admin-static.ts",
  "server/security-headers.ts",
]);
const TRANSPORT_FOLDERS = ["server/openapi/"];
/** Transport a domain's service code must never import (routers may import `trpc.ts`). */
const TRANSPORT_MODULES = new Set(["server/trpc.ts", "server/context.ts", "server/http.ts"]);
const TRANSPORT_PACKAGES = [/^fastify($|\/)/, /^@fastify\//, /^@trpc\//];
/** What a router must leave to its services: the database, the query builder, the audit writer. */
const SERVICE_WORK = [/^db\//, /^drizzle-orm($|\/)/, /^postgres$/, /^@electric-sql\/pglite/];
const AUDIT_WRITER = "server/kernel/audit.ts";
/** Files of another domain a router may use: its wire shapes and its exported service functions. */
const PUBLIC_DOMAIN_FILES = /^server\/[^/]+\/(schemas|service)\.ts$/;
const INFRA_FOLDERS = new Set(["crypto", "mail"]);
const ROOTS = ["server", "db", "client-sdk", "workers", "admin"];

export interface ImportEdge {
  from: string;
  /** Repository path for relative imports, the package name otherwise. */
  to: string;
  typeOnly: boolean;
  line: number;
}

export interface Violation {
  rule:
    | "upward-import"
    | "domain-imports-transport"
    | "kernel-imports-domain"
    | "consumer-imports-server"
    | "domain-cycle"
    | "router-does-service-work"
    | "router-imports-domain-internals";
  edge?: ImportEdge;
  message: string;
}

export interface ArchitectureReport {
  files: number;
  edges: ImportEdge[];
  violations: Violation[];
  upwardImports: number;
  /** Unordered pairs of domain folders with at least one import between them (product code). */
  domainPairs: string[];
  largestFile: { path: string; lines: number };
  largestFunction: { path: string; line: number; lines: number };
}

/** True for test code and test helpers, which the layering rules exempt. */
export function isTestCode(path: string): boolean {
  return (
    path.endsWith(".test.ts") ||
    path.startsWith("server/test/") ||
    path.includes("/test/") ||
    path.endsWith("/test-utils.ts") ||
    path.endsWith("/fixtures.ts") ||
    path.startsWith("bench/") ||
    path.startsWith("e2e/")
  );
}

/** The domain folder of a server file (`server/<domain>/…`), or null. */
export function domainOf(path: string): string | null {
  const m = /^server\/([^/]+)\//.exec(path);
  if (!m?.[1]) return null;
  const folder = m[1];
  if (folder === "kernel" || folder === "test" || INFRA_FOLDERS.has(folder)) return null;
  return folder;
}

/** True for a domain's router (`server/<domain>/router.ts`), not the root `server/router.ts`. */
export function isDomainRouter(path: string): boolean {
  return /^server\/[^/]+\/router\.ts$/.test(path);
}

/** Classify a repository path into its layer. */
export function layerOf(path: string): Layer {
  if (path.startsWith("client-sdk/") || path.startsWith("workers/") || path.startsWith("admin/"))
    return "consumer";
  // server/cli.ts is the shared argument-parsing helper, not an entry point.
  if (path === "server/main.ts" || (/(^|\/)cli\.ts$/.test(path) && path !== "server/cli.ts"))
    return "entry";
  if (path.endsWith("-cli.ts")) return "entry";
  if (path.startsWith("db/")) return "db";
  if (path.startsWith("server/kernel/") || PLATFORM_FILES.has(path)) return "kernel";
  if (RPC_FILES.has(path)) return "rpc";
  if (TRANSPORT_FILES.has(path) || TRANSPORT_FOLDERS.some((f) => path.startsWith(f)))
    return "transport";
  if (path === "server/router.ts" || /^server\/[^/]+\/router\.ts$/.test(path)) return "router";
  if (path === "server/deps.ts") return "infra";
  const folder = /^server\/([^/]+)\//.exec(path)?.[1];
  if (folder && INFRA_FOLDERS.has(folder)) return "infra";
  return "domain";
}

/** Replace comments and string/template contents with spaces, keeping line breaks and offsets. */
export function stripCode(src: string, keepStrings = false): string {
  const out = src.split("");
  let i = 0;
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== "\n") out[k] = " ";
  };
  while (i < src.length) {
    const c = src[i];
    const n = src[i + 1];
    if (c === "/" && n === "/") {
      const end = src.indexOf("\n", i);
      const stop = end === -1 ? src.length : end;
      blank(i, stop);
      i = stop;
    } else if (c === "/" && n === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end === -1 ? src.length : end + 2;
      blank(i, stop);
      i = stop;
    } else if (c === '"' || c === "'" || c === "`") {
      let k = i + 1;
      while (k < src.length && src[k] !== c) {
        if (src[k] === "\\") k++;
        else if (c === "`" && src[k] === "$" && src[k + 1] === "{") {
          // Keep template expressions as code: find the matching brace.
          let depth = 1;
          k += 2;
          while (k < src.length && depth > 0) {
            if (src[k] === "{") depth++;
            else if (src[k] === "}") depth--;
            k++;
          }
          continue;
        }
        k++;
      }
      if (!keepStrings) blank(i + 1, k);
      i = k + 1;
    } else {
      i++;
    }
  }
  return out.join("");
}

const IMPORT_RE =
  /(?:^|[\n;])\s*(import|export)\s+(type\s+)?([^;]*?)\s*from\s*["']([^"']+)["']|(?:^|[\n;])\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Static and dynamic import specifiers of one source text, with 1-based line numbers. */
export function importsOf(src: string): { spec: string; typeOnly: boolean; line: number }[] {
  const found: { spec: string; typeOnly: boolean; line: number }[] = [];
  for (const m of src.matchAll(IMPORT_RE)) {
    const spec = m[4] ?? m[5] ?? m[6];
    if (!spec) continue;
    const braces = m[3] ?? "";
    const allTypes =
      Boolean(m[2]) ||
      (/^\{[^}]*\}$/.test(braces.trim()) &&
        braces
          .replace(/[{}]/g, "")
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean)
          .every((s) => s.startsWith("type ")));
    const line = src.slice(0, (m.index ?? 0) + m[0].indexOf(spec)).split("\n").length;
    found.push({ spec, typeOnly: allTypes, line });
  }
  return found;
}

function listFiles(repo: string): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    let entries: string[];
    try {
      entries = readdirSync(join(repo, dir));
    } catch {
      return;
    }
    for (const name of entries) {
      if (name === "node_modules" || name.startsWith(".") || name === "dist") continue;
      const rel = dir ? `${dir}/${name}` : name;
      const st = statSync(join(repo, rel));
      if (st.isDirectory()) walk(rel);
      else if (/\.(ts|tsx|mts)$/.test(name) && !name.endsWith(".d.ts")) files.push(rel);
    }
  };
  for (const root of ROOTS) walk(root);
  return files.sort();
}

/** Length in lines of every function body (`function …{`, `=> {`, methods) of a stripped source. */
export function functionLengths(code: string): { line: number; lines: number }[] {
  const result: { line: number; lines: number }[] = [];
  const starts: number[] = [];
  const re =
    /\bfunction\b[^{;]*?\{|=>\s*\{|^\s*(?:async\s+)?(?:get\s+|set\s+)?[A-Za-z_$][\w$]*\s*\([^()]*(?:\([^()]*\)[^()]*)*\)\s*(?::[^{;]+)?\{/gm;
  for (const m of code.matchAll(re)) {
    const head = m[0];
    if (/^\s*(if|for|while|switch|catch|return|with)\b/.test(head)) continue;
    starts.push((m.index ?? 0) + head.length - 1);
  }
  for (const open of starts) {
    let depth = 0;
    let k = open;
    for (; k < code.length; k++) {
      if (code[k] === "{") depth++;
      else if (code[k] === "}") {
        depth--;
        if (depth === 0) break;
      }
    }
    const first = code.slice(0, open).split("\n").length;
    const last = code.slice(0, k).split("\n").length;
    result.push({ line: first, lines: last - first + 1 });
  }
  return result;
}

function resolveSpec(from: string, spec: string, known: Set<string>): string {
  if (!spec.startsWith(".")) return spec;
  const target = normalize(join(dirname(from), spec))
    .split(sep)
    .join("/");
  if (known.has(target)) return target;
  for (const candidate of [`${target}.ts`, `${target}/index.ts`])
    if (known.has(candidate)) return candidate;
  return target;
}

/** Build the graph of `repo` and check every rule. */
export function analyse(repo: string): ArchitectureReport {
  const files = listFiles(repo);
  const known = new Set(files);
  const edges: ImportEdge[] = [];
  let largestFile = { path: "", lines: 0 };
  let largestFunction = { path: "", line: 0, lines: 0 };
  for (const file of files) {
    const src = readFileSync(join(repo, file), "utf8");
    const lines = src.split("\n").length - (src.endsWith("\n") ? 1 : 0);
    const code = stripCode(src);
    if (!isTestCode(file)) {
      if (lines > largestFile.lines) largestFile = { path: file, lines };
      for (const f of functionLengths(code))
        if (f.lines > largestFunction.lines) largestFunction = { path: file, ...f };
    }
    // Imports are read with comments blanked but strings kept (the specifier is a string).
    for (const imp of importsOf(stripCode(src, true)))
      edges.push({
        from: file,
        to: resolveSpec(file, imp.spec, known),
        typeOnly: imp.typeOnly,
        line: imp.line,
      });
  }

  const violations: Violation[] = [];
  const pairs = new Set<string>();
  const domainGraph = new Map<string, Set<string>>();
  for (const e of edges) {
    if (isTestCode(e.from)) continue;
    const fromLayer = layerOf(e.from);
    const isRepoPath = known.has(e.to);
    const where = `${e.from}:${e.line} -> ${e.to}`;
    if (fromLayer === "consumer") {
      const sdkTypes = e.from.startsWith("client-sdk/") && SDK_TYPE_SOURCES.has(e.to) && e.typeOnly;
      if ((e.to.startsWith("server/") || e.to.startsWith("db/")) && !sdkTypes)
        violations.push({
          rule: "consumer-imports-server",
          edge: e,
          message: `${where}: workers/, admin/ and client-sdk/ reach Haven only through @haven/client`,
        });
      continue;
    }
    if (isDomainRouter(e.from)) {
      const home = domainOf(e.from);
      const other = domainOf(e.to);
      if (SERVICE_WORK.some((re) => re.test(e.to)) || (e.to === AUDIT_WRITER && !e.typeOnly))
        violations.push({
          rule: "router-does-service-work",
          edge: e,
          message: `${where}: a router holds input, meta, one service call and output; database access and audit writes belong in a service`,
        });
      else if (other && other !== home && !PUBLIC_DOMAIN_FILES.test(e.to))
        violations.push({
          rule: "router-imports-domain-internals",
          edge: e,
          message: `${where}: a router uses another domain only through its service.ts/schemas.ts; mount other routers in server/router.ts`,
        });
    }
    if (!isRepoPath) {
      if (fromLayer === "domain" && TRANSPORT_PACKAGES.some((re) => re.test(e.to)))
        violations.push({
          rule: "domain-imports-transport",
          edge: e,
          message: `${where}: a service never imports tRPC or Fastify (throw a domain error instead)`,
        });
      continue;
    }
    if (isTestCode(e.to)) {
      violations.push({
        rule: "upward-import",
        edge: e,
        message: `${where}: product code imports test code`,
      });
      continue;
    }
    const toLayer = layerOf(e.to);
    if (fromLayer === "domain" && TRANSPORT_MODULES.has(e.to))
      violations.push({
        rule: "domain-imports-transport",
        edge: e,
        message: `${where}: only a domain's router.ts may import the tRPC core`,
      });
    else if (fromLayer === "kernel" && toLayer !== "kernel" && toLayer !== "db")
      violations.push({
        rule: "kernel-imports-domain",
        edge: e,
        message: `${where}: the kernel imports only db/ and other kernel files`,
      });
    else if (RANK[toLayer] > RANK[fromLayer])
      violations.push({
        rule: "upward-import",
        edge: e,
        message: `${where}: ${fromLayer} imports ${toLayer}, which sits above it`,
      });
    const a = domainOf(e.from);
    const b = domainOf(e.to);
    if (a && b && a !== b && layerOf(e.from) !== "entry") {
      pairs.add([a, b].sort().join("<->"));
      if (!domainGraph.has(a)) domainGraph.set(a, new Set());
      domainGraph.get(a)?.add(b);
    }
  }
  for (const cycle of domainCycles(domainGraph))
    violations.push({
      rule: "domain-cycle",
      message: `domains import each other in a cycle: ${cycle.join(" -> ")}`,
    });

  return {
    files: files.length,
    edges,
    violations,
    upwardImports: violations.filter((v) => v.rule !== "domain-cycle").length,
    domainPairs: [...pairs].sort(),
    largestFile,
    largestFunction,
  };
}

/** Every elementary cycle found by DFS over the domain graph (each reported once). */
function domainCycles(graph: Map<string, Set<string>>): string[][] {
  const cycles = new Map<string, string[]>();
  const visit = (node: string, path: string[]) => {
    for (const next of graph.get(node) ?? []) {
      const at = path.indexOf(next);
      if (at >= 0) {
        const cycle = path.slice(at);
        const key = [...cycle].sort().join(",");
        if (!cycles.has(key)) cycles.set(key, [...cycle, next]);
      } else if (path.length < 12) visit(next, [...path, next]);
    }
  };
  for (const node of graph.keys()) visit(node, [node]);
  return [...cycles.values()];
}

/** Print the report (counts first, then each violation) for `npx tsx server/test/architecture.ts`. */
export function formatReport(r: ArchitectureReport): string {
  const byRule = new Map<string, number>();
  for (const v of r.violations) byRule.set(v.rule, (byRule.get(v.rule) ?? 0) + 1);
  return [
    `files: ${r.files}, import edges: ${r.edges.length}`,
    `upward imports (all rules but domain-cycle): ${r.upwardImports}`,
    ...[...byRule].map(([rule, n]) => `  ${rule}: ${n}`),
    `domain<->domain pairs: ${r.domainPairs.length}${r.domainPairs.length ? ` (${r.domainPairs.join(", ")})` : ""}`,
    `largest file: ${r.largestFile.path} (${r.largestFile.lines} lines)`,
    `largest function: ${r.largestFunction.path}:${r.largestFunction.line} (${r.largestFunction.lines} lines)`,
    ...r.violations.map((v) => `${v.rule}: ${v.message}`),
  ].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const repo =
    relative(process.cwd(), join(dirname(new URL(import.meta.url).pathname), "..", "..")) || ".";
  process.stdout.write(`${formatReport(analyse(repo))}\n`);
}
