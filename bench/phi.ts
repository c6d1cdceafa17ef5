/**
 * PHI-protection costs on a real PostgreSQL (BENCH_DATABASE_URL, else TEST_DATABASE_URL, else
 * postgres://postgres@127.0.0.1:5432/postgres): a scratch database is created, migrated, filled
 * and dropped.
 *
 * 1. Key rotation: N sealed clinical entries re-encrypted from key A to key B by `rotateKeys`,
 *    against a baseline of the same decrypt + re-encrypt work in memory (the crypto floor).
 * 2. Audit writes: W concurrent writers each appending audit rows, without and then with the
 *    background sealer running flat out — the ratio shows whether sealing serialises requests.
 * 3. Chain verification throughput.
 *
 * Usage: `npx tsx bench/phi.ts [entries=20000] [writers=16] [eventsPerWriter=250]`.
 */
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { v7 as uuidv7 } from "uuid";
import { openDatabase } from "../db/client.ts";
import { clinicalEntries, organizations, patients } from "../db/schema/index.ts";
import { sealAuditChain, verifyAuditChain } from "../server/audit/chain.ts";
import { decryptString, encryptString } from "../server/crypto/envelope.ts";
import { Keyring } from "../server/crypto/keyring.ts";
import { PhiCrypto } from "../server/crypto/phi.ts";
import { encryptedColumns } from "../server/crypto/registry.ts";
import { rotateKeys } from "../server/crypto/rotation.ts";
import { type AuditActor, recordAudit } from "../server/kernel/audit.ts";

const entries = Number(process.argv[2] ?? 20_000);
const writers = Number(process.argv[3] ?? 16);
const perWriter = Number(process.argv[4] ?? 250);
const adminUrl =
  process.env.BENCH_DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const name = `haven_bench_${randomBytes(4).toString("hex")}`;
const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
await admin.unsafe(`CREATE DATABASE "${name}"`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;
const handle = await openDatabase({ url: url.toString(), maxConnections: writers + 4 });
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

try {
  await handle.migrate();
  const db = handle.db;
  const A = { id: "keyA", key: randomBytes(32) };
  const B = { id: "keyB", key: randomBytes(32) };
  const blind = randomBytes(32);
  const onlyA = new PhiCrypto(new Keyring({ phiKeys: [A], blindIndexKey: blind }));
  const bFirst = new Keyring({ phiKeys: [B, A], blindIndexKey: blind });

  // Fill: one organization, 100 patients, `entries` clinical entries sealed under A.
  const orgId = uuidv7();
  await db.insert(organizations).values({ id: orgId, name: "Bench clinic" });
  const patientIds: string[] = [];
  for (let i = 0; i < 100; i++) {
    const id = uuidv7();
    patientIds.push(id);
    await db.insert(patients).values({
      id,
      organizationId: orgId,
      demographics: onlyA.seal("patients", "demographics", id, {
        name: { family: `F${i}`, given: [] },
      }),
    });
  }
  const body = {
    resourceType: "Observation",
    status: "final",
    code: { coding: [{ system: "http://loinc.org", code: "8867-4", display: "Heart rate" }] },
    valueQuantity: { value: 72, unit: "/min" },
    note: [{ text: "x".repeat(400) }],
  };
  for (let done = 0; done < entries; done += 1000) {
    const rows = Array.from({ length: Math.min(1000, entries - done) }, (_, i) => {
      const id = uuidv7();
      return {
        id,
        organizationId: orgId,
        patientId: patientIds[(done + i) % patientIds.length] as string,
        kind: "observation" as const,
        recordedAt: new Date(),
        body: onlyA.seal("clinical_entries", "body", id, body),
        source: "portal" as const,
      };
    });
    await db.insert(clinicalEntries).values(rows);
  }

  // 1. Rotation vs the in-memory crypto floor on the same values.
  const values = (await db
    .select({ id: clinicalEntries.id, body: clinicalEntries.body })
    .from(clinicalEntries)) as {
    id: string;
    body: string;
  }[];
  let t = performance.now();
  for (const v of values) {
    const ctx = { table: "clinical_entries", column: "body", rowId: v.id };
    encryptString(bFirst, ctx, decryptString(bFirst, ctx, v.body));
  }
  const floorMs = performance.now() - t;
  t = performance.now();
  const summary = await rotateKeys(db, bFirst, {
    columns: encryptedColumns().filter(
      (c) => c.table === "clinical_entries" || c.table === "patients",
    ),
  });
  const rotateMs = performance.now() - t;
  console.log(
    `rotation: ${fmt(summary.reencrypted)} values in ${fmt(rotateMs)} ms = ${fmt((summary.reencrypted / rotateMs) * 1000)} values/s ` +
      `(in-memory decrypt+encrypt floor: ${fmt(floorMs)} ms = ${fmt((values.length / floorMs) * 1000)} values/s; ` +
      `database round trips cost ${(rotateMs / floorMs).toFixed(1)}× the crypto)`,
  );

  // 2. Audit writes without and with a sealer running continuously.
  const actor: AuditActor = {
    userId: uuidv7(),
    role: "clinician",
    sessionId: "bench",
    organizationId: orgId,
    ip: "127.0.0.1",
    requestId: null,
  };
  const burst = async () => {
    const latencies: number[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < perWriter; i++) {
          const s = performance.now();
          await recordAudit(
            db,
            { ...actor, requestId: `${w}-${i}` },
            {
              action: "patient.read",
              outcome: "allowed",
              patientId: patientIds[i % 100] ?? null,
              details: { i },
            },
          );
          latencies.push(performance.now() - s);
        }
      }),
    );
    const ms = performance.now() - started;
    latencies.sort((a, b) => a - b);
    return {
      perSecond: ((writers * perWriter) / ms) * 1000,
      p50: latencies[Math.floor(latencies.length * 0.5)] ?? 0,
      p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0,
    };
  };
  await sealAuditChain(db, { full: true });
  const without = await burst();
  await sealAuditChain(db, { full: true });
  let sealing = true;
  let sealed = 0;
  const sealer = (async () => {
    while (sealing) sealed += (await sealAuditChain(db)).sealed;
  })();
  const withSealer = await burst();
  sealing = false;
  await sealer;
  sealed += (await sealAuditChain(db, { full: true })).sealed;
  console.log(
    `audit writes, ${writers} concurrent writers × ${perWriter}: ` +
      `${fmt(without.perSecond)}/s (p50 ${without.p50.toFixed(2)} ms, p99 ${without.p99.toFixed(2)} ms) without a sealer; ` +
      `${fmt(withSealer.perSecond)}/s (p50 ${withSealer.p50.toFixed(2)} ms, p99 ${withSealer.p99.toFixed(2)} ms) with the sealer running flat out ` +
      `(throughput ratio ${(withSealer.perSecond / without.perSecond).toFixed(2)}; ${fmt(sealed)} links appended meanwhile)`,
  );

  // 3. Verification.
  t = performance.now();
  const report = await verifyAuditChain(db);
  const verifyMs = performance.now() - t;
  console.log(
    `verify: ${fmt(report.links)} links in ${fmt(verifyMs)} ms = ${fmt((report.links / verifyMs) * 1000)} links/s, ok=${report.ok}`,
  );
  const [{ n } = { n: 0 }] = (await db.execute(
    sql`SELECT count(*)::int AS n FROM audit_events`,
  )) as unknown as {
    n: number;
  }[];
  console.log(`(${fmt(n)} audit events in the scratch database)`);
} finally {
  await handle.close();
  await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
}
