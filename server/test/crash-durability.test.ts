import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { and, eq, inArray, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient, isHavenError } from "../../client-sdk/index.ts";
import { appointments, auditEvents } from "../../db/schema/index.ts";
import { setHours, WEEKDAYS } from "../appointments/fixtures.ts";
import { sealAuditChain, verifyAuditChain } from "../audit/chain.ts";
import type { AppConfig } from "../config.ts";
import { loadKeys } from "../crypto/load.ts";
import { PhiCrypto } from "../crypto/phi.ts";
import { createTestDatabase, type TestDatabase } from "./db.ts";
import {
  type Deps,
  loginWithMfa,
  makeOrganization,
  makePatient,
  makePractitioner,
  makeUser,
} from "./factory.ts";

/**
 * Crash durability (issue 13): booking and PHI-read load against a real Haven process
 * (`tsx server/main.ts`) on PostgreSQL, `kill -9` at a random moment, restart, and check:
 * every acknowledged booking is present (with its `appointment.book` audit row), every
 * unacknowledged one is all there or not at all, no reminder points at a missing appointment,
 * every acknowledged PHI read has its audit row, and the audit chain verifies.
 * CI: 3 cycles (fixed CRASH_SEED); long mode: `npm run test:crash` (CRASH_CYCLES=20).
 */
const CYCLES = Number(process.env.CRASH_CYCLES ?? 3);
const SEED = Number(process.env.CRASH_SEED ?? 4242);
let rand = SEED;
/** Deterministic PRNG (mulberry32) so a CI failure can be replayed with CRASH_SEED. */
function random(): number {
  rand = (rand + 0x6d2b79f5) | 0;
  let t = Math.imul(rand ^ (rand >>> 15), 1 | rand);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

let t: TestDatabase;
let dataDir: string;
let deps: Deps;
let child: ChildProcess | undefined;

function env(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: t.url,
    HAVEN_DATA_DIR: dataDir,
    HAVEN_DEMO: "false",
    HAVEN_MIGRATE_ON_START: "false",
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: "warn",
    NODE_ENV: "development",
  };
}

/** Start Haven and resolve its base URL once it prints it. */
function startHaven(): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
      env: env(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    let out = "";
    const timer = setTimeout(() => reject(new Error(`Haven did not start: ${out}`)), 60_000);
    proc.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /API \(tRPC\):\s+(http:\/\/[^\s]+)\/trpc/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.stderr?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      if (!/API \(tRPC\)/.test(out)) reject(new Error(`Haven exited ${code}: ${out}`));
    });
  });
}

function kill9(): Promise<void> {
  return new Promise((resolve) => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once("exit", () => resolve());
    proc.kill("SIGKILL");
  });
}

beforeAll(async () => {
  t = await createTestDatabase({ maxConnections: 10 });
  dataDir = await mkdtemp(join(tmpdir(), "haven-crash-"));
  const keys = await loadKeys({ HAVEN_DATA_DIR: dataDir } as AppConfig);
  deps = { db: t.handle.db, crypto: new PhiCrypto(keys.keyring), now: () => new Date() };
}, 120_000);
afterAll(async () => {
  await kill9();
  await t?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

interface Attempt {
  patientId: string;
  practitionerId: string;
  startsAt: Date;
  acked: string | null;
  refused: boolean;
}

describe(`kill -9 under load, ${CYCLES} cycles`, () => {
  it("acknowledged writes survive, unacknowledged are all-or-nothing, audit and chain hold", async () => {
    const org = await makeOrganization(deps);
    const staff = await makeUser(deps, "staff", org);
    const practitioners: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await makePractitioner(deps, org);
      await setHours(
        { deps } as never,
        org,
        p,
        WEEKDAYS.map((weekday) => ({ weekday, start: "00:00", end: "23:30", slotMinutes: 30 })),
      );
      practitioners.push(p);
    }
    const report: string[] = [];
    let totalAcked = 0;
    let totalLost = 0;
    let totalReads = 0;
    let dayOffset = 0;
    // The restart after each crash is also the next cycle's server.
    let url = await startHaven();
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const token = await loginWithMfa(
        {
          services: {
            sessions: {
              markMfaVerified: (id: string) =>
                t.handle.db.execute(sql`update sessions set mfa_verified = true where id = ${id}`),
            },
          },
        } as never,
        url,
        staff,
      );
      const client = createHavenClient({ url, token });
      const attempts: Attempt[] = [];
      let readsAcked = 0;
      let stop = false;
      const patientIds = await Promise.all(
        Array.from({ length: 40 }, async () => (await makePatient(deps, org)).id),
      );
      const worker = async (w: number) => {
        for (let i = 0; !stop; i++) {
          const patientId = patientIds[(w * 10 + i) % patientIds.length] ?? "";
          if (i % 3 === 2) {
            try {
              await client.patients.get.query({ patientId });
              if (!stop) readsAcked++;
            } catch {}
            continue;
          }
          const day = dayOffset++;
          const a: Attempt = {
            patientId,
            practitionerId: practitioners[w % practitioners.length] ?? "",
            // Distinct future half hours: 2030-01-07 (a Monday) + n × 30 min.
            startsAt: new Date(Date.UTC(2030, 0, 7) + day * 30 * 60_000),
            acked: null,
            refused: false,
          };
          attempts.push(a);
          try {
            const r = await client.appointments.book.mutate({
              practitionerId: a.practitionerId,
              patientId: a.patientId,
              startsAt: a.startsAt,
              endsAt: new Date(a.startsAt.getTime() + 30 * 60_000),
              override: { reason: "crash durability load" },
            });
            a.acked = r.id;
          } catch (err) {
            if (isHavenError(err) && (err.data?.httpStatus ?? 500) < 500) a.refused = true;
          }
        }
      };
      const workers = Array.from({ length: 6 }, (_, w) => worker(w));
      // Kill at a random moment once the load is flowing (the first booking acknowledged).
      const warm = Date.now();
      while (!attempts.some((a) => a.acked) && Date.now() - warm < 30_000) {
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 200 + random() * 1_500));
      await kill9();
      stop = true;
      await Promise.allSettled(workers);

      // Restart and check.
      url = await startHaven();
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const acked = attempts.filter((a) => a.acked);
      const ids = acked.map((a) => a.acked as string);
      const present =
        ids.length === 0
          ? []
          : await t.handle.db
              .select({ id: appointments.id })
              .from(appointments)
              .where(inArray(appointments.id, ids));
      const lost = ids.length - present.length;
      const audited =
        ids.length === 0
          ? []
          : await t.handle.db
              .select({ id: auditEvents.resourceId })
              .from(auditEvents)
              .where(
                and(
                  eq(auditEvents.action, "appointment.book"),
                  eq(auditEvents.outcome, "allowed"),
                  inArray(auditEvents.resourceId, ids),
                ),
              );
      expect(new Set(audited.map((r) => r.id)).size).toBe(ids.length);
      // Unacknowledged: either the whole booking (row + audit) or nothing.
      for (const a of attempts.filter((x) => !x.acked && !x.refused)) {
        const rows = await t.handle.db
          .select({ id: appointments.id })
          .from(appointments)
          .where(
            and(
              eq(appointments.practitionerId, a.practitionerId),
              eq(appointments.startsAt, a.startsAt),
            ),
          );
        if (rows[0]) {
          const aud = await t.handle.db
            .select({ id: auditEvents.id })
            .from(auditEvents)
            .where(
              and(
                eq(auditEvents.action, "appointment.book"),
                eq(auditEvents.resourceId, rows[0].id),
              ),
            );
          expect(aud.length, "half-written booking").toBe(1);
        }
      }
      const orphans = (await t.handle.db.execute(
        sql`select count(*)::int as n from reminders r left join appointments a on a.id = r.appointment_id where a.id is null`,
      )) as unknown as { n: number }[];
      expect(orphans[0]?.n).toBe(0);
      const reads = (await t.handle.db.execute(
        sql`select count(*)::int as n from audit_events where action = 'patient.read' and outcome = 'allowed' and actor_user_id = ${staff.userId}`,
      )) as unknown as { n: number }[];
      totalReads += readsAcked;
      expect(reads[0]?.n ?? 0).toBeGreaterThanOrEqual(totalReads);
      totalAcked += ids.length;
      totalLost += lost;
      report.push(
        `cycle ${cycle + 1}: ${attempts.length} bookings sent, ${ids.length} acknowledged, ${lost} lost, ${readsAcked} reads acknowledged`,
      );
      expect(lost).toBe(0);
    }
    await sealAuditChain(t.handle.db, { full: true });
    expect((await verifyAuditChain(t.handle.db)).ok).toBe(true);
    console.log(`${report.join("\n")}\ntotal: ${totalAcked} acknowledged, ${totalLost} lost`);
    expect(totalAcked).toBeGreaterThan(0);
    await kill9();
  }, 300_000);
});
