import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testCrypto } from "../../test/db.ts";
import { checkPlan, hotQueries, type PlanCheck } from "../plan-checks.ts";
import { FULL_VOLUME, generateVolume, type VolumeReport, type VolumeSize } from "../volume.ts";

/**
 * The volume (10k patients, 100k appointments, 1M audit events) with each count times its
 * factor (patients, appointments, audit events).
 */
export function scaledVolume(patients: number, appointments: number, audit: number): VolumeSize {
  return {
    ...FULL_VOLUME,
    patients: Math.round(FULL_VOLUME.patients * patients),
    appointments: Math.round(FULL_VOLUME.appointments * appointments),
    auditEvents: Math.round(FULL_VOLUME.auditEvents * audit),
  };
}

/**
 * Register the plan checks (issue 15, "query plans checked") for a database `open()` returns
 * (empty and migrated): generate `size` with set-based SQL, then for every hot query, issued by
 * the real service function, EXPLAIN ANALYZE it and assert on the plan, never on time: no
 * sequential scan on a large table, and the expected index used. `after` sees the generation
 * report and every check (long mode reads pg_stat_statements there).
 */
export function planSuite(options: {
  size: VolumeSize;
  open: () => Promise<{ url: string; close: () => Promise<void> }>;
  after?: (client: postgres.Sql, volume: VolumeReport, checks: PlanCheck[]) => Promise<void>;
}): void {
  const { size } = options;
  let target: { url: string; close: () => Promise<void> };
  let client: postgres.Sql;
  let volume: VolumeReport;
  const checks: PlanCheck[] = [];
  const crypto = testCrypto();
  const now = new Date();

  beforeAll(async () => {
    target = await options.open();
    client = postgres(target.url, { max: 2, onnotice: () => {} });
    volume = await generateVolume(client, size);
    // biome-ignore lint/suspicious/noConsole: the report quotes the generation time
    console.log(
      `[plans] generated ${JSON.stringify(volume.rows)} in ${volume.totalMs} ms ${JSON.stringify(volume.stepsMs)}`,
    );
  }, 900_000);

  afterAll(async () => {
    if (options.after && client && volume) await options.after(client, volume, checks);
    await client?.end();
    await target?.close();
  }, 120_000);

  describe(`hot query plans (${size.patients} patients, ${size.appointments} appointments, ${size.auditEvents} audit events)`, () => {
    it("generated the requested volume", () => {
      expect(volume.rows.patients).toBe(size.patients);
      expect(volume.rows.appointments).toBe(size.appointments);
      expect(volume.rows.audit_events).toBe(size.auditEvents);
      expect(volume.rows.audit_chain).toBe(size.auditEvents);
    });

    for (const q of hotQueries(crypto, now)) {
      it.skipIf((q.minAuditEvents ?? 0) > size.auditEvents)(
        `${q.name}: uses ${q.expectIndex.join(" or ")}, no sequential scan on a large table`,
        async () => {
          const check = await checkPlan(client, q);
          checks.push(check);
          // biome-ignore lint/suspicious/noConsole: the report quotes the index each query uses
          console.log(
            `[plans] ${check.name}: indexes ${check.indexes.join(", ") || "none"}; seq scans on large tables: ${check.seqScans.join(", ") || "none"}; ${check.plan.executionMs.toFixed(2)} ms`,
          );
          expect(check.seqScans).toEqual([]);
          expect(check.indexes.some((i) => check.expected.includes(i))).toBe(true);
        },
      );
    }
  });
}
