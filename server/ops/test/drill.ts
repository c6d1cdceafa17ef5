import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";
import { expect } from "vitest";
import { createHavenClient } from "../../../client-sdk/index.ts";
import { startHaven } from "../../app.ts";
import { makeClinic } from "../../appointments/fixtures.ts";
import { sealAuditChain, verifyAuditChain } from "../../audit/chain.ts";
import { loadConfig } from "../../config.ts";
import { loginWithMfa, makePatient } from "../../test/factory.ts";
import { createHarness, LogSink } from "../../test/harness.ts";
import type { BackupManifest } from "../backup.ts";

const run = promisify(execFile);

/**
 * The restore drill (docs/operations.md: a backup is only proven by restoring it), shared by the default run (restore into a new database on the
 * test cluster) and long mode (into a fresh cluster): fixtures + bookings → `npm run backup` →
 * `npm run restore` into the target → Haven started on it → record reads decrypt, a booking
 * succeeds, the audit chain verifies with the same head, and `UPDATE audit_events` as a member of
 * haven_app is refused. @returns the numbers the report quotes
 */
export async function restoreDrill(target: {
  /** postgres:// URL of the (not yet existing) database to restore into. */
  url: string;
  /** Admin URL of the target's cluster (to create/drop the login role). */
  adminUrl: string;
}): Promise<Record<string, unknown>> {
  const h = await createHarness();
  const work = await mkdtemp(join(tmpdir(), "haven-drill-"));
  const role = `drill_${randomBytes(4).toString("hex")}`;
  const admin = postgres(target.adminUrl, { max: 1, onnotice: () => {} });
  try {
    // Fixtures: a clinic, patients, bookings, reads (audit events), a sealed chain.
    const c = await makeClinic(h);
    for (let i = 0; i < 5; i++) await makePatient(h.deps, c.organizationId);
    const staff = h.caller(c.staff.actor);
    const from = new Date(Date.now() + 2 * 86_400_000);
    const { slots } = await staff.appointments.slots({
      practitionerId: c.practitionerId,
      from,
      to: new Date(from.getTime() + 14 * 86_400_000),
    });
    expect(slots.length).toBeGreaterThan(6);
    for (const s of slots.slice(0, 3)) {
      await staff.appointments.book({
        practitionerId: c.practitionerId,
        patientId: c.patient.id,
        startsAt: s.startsAt,
        reason: "annual check-up",
      });
    }
    const original = await staff.patients.get({ patientId: c.patient.id });
    await sealAuditChain(h.deps.db, { full: true });

    const keyring = h.deps.crypto.keyring;
    const env = {
      ...process.env,
      NODE_ENV: "test",
      HAVEN_PHI_KEYS: `${keyring.activeKeyId}:${keyring.key(keyring.activeKeyId).toString("base64")}`,
      HAVEN_BLIND_INDEX_KEY: keyring.blindIndexKey.toString("base64"),
      HAVEN_DATA_DIR: join(work, "data"),
      HAVEN_MIGRATE_ON_START: "false",
    };
    const tsx = join(process.cwd(), "node_modules", ".bin", "tsx");
    const backup = await run(tsx, ["server/ops/backup-cli.ts", "--out", work, "--json"], {
      env: { ...env, DATABASE_URL: h.testDb.url },
    });
    const manifest = JSON.parse(backup.stdout) as BackupManifest & { dir: string };
    expect(manifest.auditChainHead).not.toBeNull();
    expect(manifest.rowCounts.appointments).toBe(3);
    expect(manifest.keys.idsInUse).toEqual([keyring.activeKeyId]);
    expect(backup.stdout).not.toContain(env.HAVEN_BLIND_INDEX_KEY);

    const restore = await run(
      tsx,
      ["server/ops/restore-cli.ts", manifest.dir, "--target", target.url],
      {
        env: { ...env, DATABASE_URL: target.url },
      },
    );
    expect(restore.stdout).toMatch(/all equal to the manifest/);

    // Haven on the restored database.
    const logs = new LogSink();
    const haven = await startHaven(
      loadConfig({
        ...env,
        DATABASE_URL: target.url,
        PORT: "0",
        HAVEN_DEMO: "false",
        HAVEN_AUDIT_SEAL_INTERVAL_MS: "0",
        HAVEN_MIGRATE_ON_START: "true",
      }),
      { logDestination: logs },
    );
    try {
      const db = haven.database.db;
      // The chain: same head as the manifest, every link verifies.
      const head = manifest.auditChainHead;
      if (!head) throw new Error("the backup has no chain head");
      const verified = await verifyAuditChain(db, { anchor: head });
      expect(verified.ok).toBe(true);
      expect(verified.head).toEqual(manifest.auditChainHead);

      const token = await loginWithMfa(haven, haven.url, c.staff);
      const sdk = createHavenClient({ url: haven.url, token });
      const read = await sdk.patients.get.query({ patientId: c.patient.id });
      expect(read.demographics).toEqual(original.demographics);
      const appts = await sdk.appointments.listForPatient.query({ patientId: c.patient.id });
      expect(appts.items.map((a) => a.reason)).toEqual([
        "annual check-up",
        "annual check-up",
        "annual check-up",
      ]);
      const booked = await sdk.appointments.book.mutate({
        practitionerId: c.practitionerId,
        patientId: c.patient.id,
        startsAt: (slots[5] ?? slots[0])?.startsAt ?? new Date(),
        reason: "follow-up after restore",
      });
      expect(booked.status).toBe("booked");

      // Append-only still holds for the application role after the restore.
      await admin.unsafe(`CREATE ROLE "${role}" LOGIN IN ROLE haven_app`);
      const asApp = new URL(target.url);
      asApp.username = role;
      const app = postgres(asApp.toString(), { max: 1, onnotice: () => {} });
      try {
        const [row] = await app<{ n: number }[]>`SELECT count(*)::int AS n FROM audit_events`;
        const n = row?.n ?? 0;
        expect(n).toBeGreaterThan(0);
        const update = await app`UPDATE audit_events SET action = 'tampered'`.catch(
          (e: { code?: string }) => e,
        );
        expect((update as { code?: string }).code).toBe("42501");
        const del = await app`DELETE FROM audit_events`.catch((e: { code?: string }) => e);
        expect((del as { code?: string }).code).toBe("42501");
      } finally {
        await app.end();
      }
      return {
        rowCounts: manifest.rowCounts,
        chainHead: manifest.auditChainHead,
        chainLinksVerified: verified.links,
        restoreSummary: restore.stdout.trim(),
        bookingAfterRestore: booked.id,
        appendOnly: "UPDATE and DELETE on audit_events as haven_app member refused (42501)",
      };
    } finally {
      await haven.close();
    }
  } finally {
    await admin.unsafe(`DROP ROLE IF EXISTS "${role}"`).catch(() => {});
    await admin.end();
    await rm(work, { recursive: true, force: true });
    await h.close();
  }
}
