/**
 * Group a V8 `.cpuprofile` (from `npm run bench -- --cpu-prof`) by self time into the layers the
 * issue asks about: tRPC, superjson, zod, drizzle, postgres.js, crypto, pino, fastify, audit,
 * Haven's own code, node core, GC/idle/program. Also lists the top self-time functions.
 * Usage: `npx tsx bench/suite/profile.ts <file.cpuprofile> [top=25]`. Prints Markdown.
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The layer a call frame belongs to, from its script URL (package or Haven path). */
export function layerOf(url: string, fn: string): string {
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(idle)") return "idle";
  if (fn === "(program)") return "program";
  const rules: [RegExp, string][] = [
    [/node_modules\/@trpc\//, "tRPC"],
    [
      /node_modules\/superjson\/|node_modules\/copy-anything\/|node_modules\/is-what\//,
      "superjson",
    ],
    [/node_modules\/zod\//, "zod"],
    [/node_modules\/drizzle-orm\//, "drizzle"],
    [/node_modules\/postgres\//, "postgres.js"],
    [/server\/crypto\/|node:crypto|internal\/crypto/, "crypto"],
    [/node_modules\/(pino|sonic-boom|thread-stream)/, "pino"],
    [
      /node_modules\/(fastify|@fastify|find-my-way|light-my-request|avvio|fast-json-stringify)/,
      "fastify",
    ],
    [/server\/kernel\/audit|server\/audit\//, "audit"],
    [/node_modules\/(tsx|esbuild)\//, "tsx (loader)"],
    [/\/(server|db|lib)\//, "Haven"],
    [/^node:|^internal\/|^$/, "node core"],
  ];
  for (const [re, name] of rules) if (re.test(url)) return name;
  return "other";
}

/** Self time per layer and per function (ms) of one profile. */
export function summarize(p: Profile): {
  total: number;
  layers: [string, number][];
  fns: [string, number][];
} {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => {
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  });
  const layers = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  for (const [id, ms] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const layer = layerOf(n.callFrame.url, n.callFrame.functionName);
    if (layer === "idle") continue;
    total += ms;
    layers.set(layer, (layers.get(layer) ?? 0) + ms);
    const short = n.callFrame.url
      .replace(/^.*node_modules\//, "")
      .replace(/^file:\/\/.*?\/(server|db|lib|bench)\//, "$1/");
    const key = `${n.callFrame.functionName || "(anonymous)"} ${short}:${n.callFrame.lineNumber + 1} [${layer}]`;
    fns.set(key, (fns.get(key) ?? 0) + ms);
  }
  const sort = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return { total, layers: sort(layers), fns: sort(fns) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: profile.ts <file.cpuprofile> [top]");
  const top = Number(process.argv[3] ?? 25);
  const s = summarize(JSON.parse(readFileSync(file, "utf8")) as Profile);
  const pct = (ms: number) => `${((ms / s.total) * 100).toFixed(1)}%`;
  const out = [
    `Self time, ${Math.round(s.total)} ms busy (idle excluded)`,
    "",
    "| layer | ms | share |",
    "|---|---|---|",
  ];
  for (const [k, v] of s.layers) out.push(`| ${k} | ${Math.round(v)} | ${pct(v)} |`);
  out.push("", "| function | ms | share |", "|---|---|---|");
  for (const [k, v] of s.fns.slice(0, top)) out.push(`| ${k} | ${Math.round(v)} | ${pct(v)} |`);
  process.stdout.write(`${out.join("\n")}\n`);
}
