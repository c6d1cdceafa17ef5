/**
 * Summarise one V8 `.heapsnapshot`, or diff two: self size (bytes → MB) and count per node type and
 * constructor/name, largest first (for a diff: largest growth first). Strings are grouped by type
 * only ("string", "concatenated string", …); `--strings` also groups the largest strings by their first
 * 60 characters, which shows what is being retained (SQL text, serialized responses, keys).
 *
 * Usage: `node --import tsx bench/heap-diff.ts [--top N] [--strings] a.heapsnapshot [b.heapsnapshot]`
 */
import { readFileSync } from "node:fs";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}
type Groups = Map<string, { size: number; count: number }>;

const argv = process.argv.slice(2);
const top = Number(argv.includes("--top") ? argv[argv.indexOf("--top") + 1] : 25);
const withStrings = argv.includes("--strings");
const files = argv.filter((a, i) => a.endsWith(".heapsnapshot") && argv[i - 1] !== "--top");

/** Self size and count per `type name` of every node in `file`. */
function groups(file: string): { byType: Groups; strings: Groups; total: number } {
  const snap = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [t, n, s] = ["type", "name", "self_size"].map((f) => fields.indexOf(f)) as [
    number,
    number,
    number,
  ];
  const byType: Groups = new Map();
  const strings: Groups = new Map();
  let total = 0;
  const add = (m: Groups, k: string, size: number) => {
    const g = m.get(k) ?? { size: 0, count: 0 };
    g.size += size;
    g.count++;
    m.set(k, g);
  };
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + t] as number] ?? "?";
    const size = snap.nodes[i + s] as number;
    total += size;
    const name = snap.strings[snap.nodes[i + n] as number] ?? "";
    const named = type === "object" || type === "native" || type === "closure" || type === "code";
    add(byType, named ? `${type} ${name.slice(0, 80)}` : type, size);
    if (withStrings && type === "string")
      add(strings, name.slice(0, 60).replace(/\s+/g, " "), size);
  }
  return { byType, strings, total };
}

const mb = (b: number) => `${(b / 1024 / 1024).toFixed(2)} MB`;
function print(title: string, m: Groups, base?: Groups): void {
  console.log(title);
  const rows = [...m.entries()].map(([k, g]) => {
    const b = base?.get(k) ?? { size: 0, count: 0 };
    return { k, size: g.size - b.size, count: g.count - b.count, abs: g.size };
  });
  if (base)
    for (const [k, g] of base)
      if (!m.has(k)) rows.push({ k, size: -g.size, count: -g.count, abs: 0 });
  rows.sort((a, b) => b.size - a.size);
  for (const r of rows.slice(0, top)) {
    console.log(
      `  ${mb(r.size).padStart(10)}  ${String(r.count).padStart(8)} ×  ${r.k}${base ? `  (now ${mb(r.abs)})` : ""}`,
    );
  }
}

const [a, b] = files;
if (!a) throw new Error("usage: heap-diff.ts a.heapsnapshot [b.heapsnapshot]");
const ga = groups(a);
if (!b) {
  console.log(`${a}: ${mb(ga.total)}`);
  print("by type/constructor (self size):", ga.byType);
  if (withStrings) print("strings by prefix:", ga.strings);
} else {
  const gb = groups(b);
  console.log(`${a}: ${mb(ga.total)} → ${b}: ${mb(gb.total)}`);
  print("growth by type/constructor (self size):", gb.byType, ga.byType);
  if (withStrings) print("string growth by prefix:", gb.strings, ga.strings);
}
