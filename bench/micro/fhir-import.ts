/**
 * FHIR import throughput on PostgreSQL: ~200 patients (7 patient bundles × 29) made by re-keying the shipped Synthea
 * bundles (every id a bundle defines — and every mention of it, including the MRN, which equals
 * the patient id in Synthea — replaced by a fresh UUID per copy; references to the shared
 * hospital/practitioner bundles are kept), imported with `importBundle` one bundle per transaction
 * after the shared bundles. Prints resources (bundle entries) per second and this process's CPU
 * time over the timed loop (µs per resource; Postgres's CPU not included).
 * Usage: `npx tsx bench/micro/fhir-import.ts [copiesPerBundle=29]` (BENCH_DATABASE_URL or
 * TEST_DATABASE_URL or the local server; a scratch database is created and dropped).
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { v4 as uuidv4 } from "uuid";
import { openDatabase } from "../../db/client.ts";
import { PhiCrypto } from "../../server/crypto/phi.ts";
import { DEMO_BUNDLE_DIR } from "../../server/demo/seed.ts";
import { importBundle } from "../../server/fhir/importer.ts";
import { createBenchDatabase, dropBenchDatabase, freshKeys } from "../suite/setup.ts";

/** Copy a bundle's text with every id it defines replaced by a fresh UUID (consistently). */
export function rekey(text: string): string {
  const bundle = JSON.parse(text) as { entry?: { resource?: { id?: string } }[] };
  let out = text;
  for (const e of bundle.entry ?? []) {
    const id = e.resource?.id;
    if (id && id.length >= 8) out = out.split(id).join(uuidv4());
  }
  return out;
}

const copies = Number(process.argv[2] ?? 29);
const adminUrl =
  process.env.BENCH_DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const db = await createBenchDatabase(adminUrl);
const handle = await openDatabase({ url: db.url, maxConnections: 4 });
try {
  await handle.migrate();
  const deps = { db: handle.db, crypto: new PhiCrypto(freshKeys().keyring), now: () => new Date() };
  const files = (await readdir(DEMO_BUNDLE_DIR)).filter((f) => f.endsWith(".json"));
  const texts = await Promise.all(files.map((f) => readFile(join(DEMO_BUNDLE_DIR, f), "utf8")));
  const shared = texts.filter((t) => !/"resourceType"\s*:\s*"Patient"/.test(t));
  const patientsBundles = texts.filter((t) => /"resourceType"\s*:\s*"Patient"/.test(t));
  for (const t of shared) await importBundle(deps, t);
  const inputs = patientsBundles.flatMap((t) => Array.from({ length: copies }, () => rekey(t)));
  let entries = 0;
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  for (const t of inputs) entries += (await importBundle(deps, t)).entries;
  const ms = performance.now() - started;
  // This process's CPU over the timed loop (user + system): steadier than wall time on a shared
  // machine; Postgres's own CPU is not included.
  const cpu = process.cpuUsage(cpuBefore);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  console.log(
    `FHIR import: ${inputs.length} patients (${patientsBundles.length} Synthea bundles × ${copies}, re-keyed), ` +
      `${entries} resources in ${Math.round(ms)} ms = ${Math.round((entries / ms) * 1000)} resources/s; ` +
      `importer CPU ${Math.round(cpuMs)} ms (user ${Math.round(cpu.user / 1000)}, system ${Math.round(cpu.system / 1000)}) = ` +
      `${Math.round((cpuMs * 1000) / entries)} µs/resource`,
  );
} finally {
  await handle.close();
  await dropBenchDatabase(adminUrl, db.name);
}
