/**
 * Booking cost on real PostgreSQL, measured against a baseline in the same run:
 * - baseline: a bare INSERT of an appointment row (no rules, no reminders, audit or change log);
 * - `book` with an availability check (slot engine) and with a staff override, sequentially;
 * - `book` from 10 concurrent workers into distinct slots (pool of 10);
 * - the slot engine alone over 31 days of a 24-hour, 15-minute-slot calendar.
 * Usage: `npx tsx bench/booking.ts [bookings=300]` (TEST_DATABASE_URL or the local test server).
 * Creates a scratch database and drops it afterwards. Prints ms per operation and ratios.
 */
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { v7 as uuidv7 } from "uuid";
import { openDatabase } from "../db/client.ts";
import {
  appointments,
  availabilityRules,
  organizations,
  patients,
  practitioners,
} from "../db/schema/index.ts";
import { book } from "../server/appointments/booking.ts";
import { DEFAULT_SCHEDULING_SETTINGS } from "../server/appointments/settings.ts";
import { createUser } from "../server/auth/login.ts";
import { Keyring } from "../server/crypto/keyring.ts";
import { PhiCrypto } from "../server/crypto/phi.ts";
import type { AuditActor } from "../server/kernel/audit.ts";
import type { Actor } from "../server/kernel/roles.ts";
import { computeSlots, parseLocalTime } from "../server/scheduling/slots.ts";

const n = Number(process.argv[2] ?? 300);
const adminUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const name = `haven_bench_${randomBytes(4).toString("hex")}`;
const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
await admin.unsafe(`CREATE DATABASE "${name}"`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;
const handle = await openDatabase({ url: url.toString(), maxConnections: 10 });

try {
  await handle.migrate();
  const db = handle.db;
  const crypto = new PhiCrypto(
    new Keyring({ phiKeys: [{ id: "b1", key: randomBytes(32) }], blindIndexKey: randomBytes(32) }),
  );
  const now = new Date("2027-01-01T00:00:00Z");
  const deps = { db, crypto, now: () => now, scheduling: DEFAULT_SCHEDULING_SETTINGS };
  const org = uuidv7();
  await db.insert(organizations).values({ id: org, name: "Bench", timezone: "America/New_York" });
  const practitioner = async () => {
    const id = uuidv7();
    await db.insert(practitioners).values({ id, organizationId: org, name: "Dr. Bench" });
    await db.insert(availabilityRules).values(
      [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({
        id: uuidv7(),
        organizationId: org,
        practitionerId: id,
        weekday,
        startTime: "00:00:00",
        endTime: "24:00:00",
        slotMinutes: 15,
      })),
    );
    return id;
  };
  const patient = uuidv7();
  await db.insert(patients).values({
    id: patient,
    organizationId: org,
    demographics: crypto.seal("patients", "demographics", patient, { name: { family: "X" } }),
  });
  const staffUserId = await createUser(deps, {
    email: `bench-${randomBytes(4).toString("hex")}@haven.test`,
    password: "bench staff passphrase 1",
    role: "staff",
    organizationId: org,
  });
  const actor: Actor = {
    userId: staffUserId,
    role: "staff",
    organizationId: org,
    sessionId: "bench",
    patientId: null,
    practitionerId: null,
  };
  const auditActor: AuditActor = {
    userId: staffUserId,
    role: "staff",
    sessionId: null,
    organizationId: org,
    ip: null,
    requestId: null,
  };
  const slotStart = (i: number) => new Date(Date.UTC(2027, 0, 4, 5, 0) + i * 15 * 60_000);
  const time = async (label: string, count: number, op: (i: number) => Promise<unknown>) => {
    const t0 = performance.now();
    for (let i = 0; i < count; i++) await op(i);
    const ms = (performance.now() - t0) / count;
    console.log(
      `${label.padEnd(44)} ${ms.toFixed(2).padStart(8)} ms/op  ${(1000 / ms).toFixed(0).padStart(6)} ops/s`,
    );
    return ms;
  };

  const p0 = await practitioner();
  const base = await time("baseline: bare INSERT", n, (i) =>
    db.insert(appointments).values({
      id: uuidv7(),
      organizationId: org,
      patientId: patient,
      practitionerId: p0,
      startsAt: new Date(slotStart(i).getTime() + 3 * 365 * 86_400_000),
      endsAt: new Date(slotStart(i).getTime() + 3 * 365 * 86_400_000 + 15 * 60_000),
      status: "booked",
    }),
  );
  const p1 = await practitioner();
  const inSlot = await time("book (availability check, sequential)", n, (i) =>
    book(deps, actor, auditActor, {
      practitionerId: p1,
      patientId: patient,
      startsAt: slotStart(i),
      reason: "bench",
    }),
  );
  const p2 = await practitioner();
  const override = await time("book (staff override, sequential)", n, (i) =>
    book(deps, actor, auditActor, {
      practitionerId: p2,
      patientId: patient,
      startsAt: new Date(slotStart(i).getTime() + 365 * 86_400_000),
      endsAt: new Date(slotStart(i).getTime() + 365 * 86_400_000 + 15 * 60_000),
      override: { reason: "bench" },
    }),
  );
  const p3 = await practitioner();
  const workers = 10;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = w; i < n; i += workers) {
        await book(deps, actor, auditActor, {
          practitionerId: p3,
          patientId: patient,
          startsAt: new Date(slotStart(i).getTime() + 2 * 365 * 86_400_000),
          endsAt: new Date(slotStart(i).getTime() + 2 * 365 * 86_400_000 + 15 * 60_000),
          override: { reason: "bench" },
        });
      }
    }),
  );
  const concurrentMs = (performance.now() - t0) / n;
  console.log(
    `${"book (override, 10 concurrent workers)".padEnd(44)} ${concurrentMs.toFixed(2).padStart(8)} ms/op  ${(1000 / concurrentMs).toFixed(0).padStart(6)} ops/s`,
  );

  const weekly = [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({
    weekday,
    start: parseLocalTime("00:00"),
    end: parseLocalTime("24:00"),
    slotMinutes: 15,
  }));
  let slots = 0;
  const engine = await time("slot engine: 31 days × 96 slots", 20, async () => {
    slots = computeSlots({
      timeZone: "America/New_York",
      weekly,
      exceptions: [],
      busy: [],
      from: new Date("2027-03-01T05:00:00Z"),
      to: new Date("2027-04-01T04:00:00Z"),
    }).length;
  });
  console.log(`  (${slots} slots per run, ${((engine * 1000) / slots).toFixed(1)} µs per slot)`);
  console.log(
    `ratios vs bare INSERT: availability-checked book ${(inSlot / base).toFixed(1)}×, override book ${(override / base).toFixed(1)}×, concurrent book ${(concurrentMs / base).toFixed(1)}×`,
  );
} finally {
  await handle.close();
  await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
}
