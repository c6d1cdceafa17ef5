/**
 * Bench database setup: a fresh PostgreSQL database, migrated, with the shipped Synthea bundles and
 * demo accounts (`seedDemo`), plus generated data written through Haven's real encryption
 * (`PhiCrypto.seal`, blind indexes) in batched multi-row INSERTs.
 */
import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import postgres from "postgres";
import { v7 as uuidv7 } from "uuid";
import { openDatabase } from "../../db/client.ts";
import {
  appointments,
  availabilityRules,
  patients,
  practitioners,
  users,
} from "../../db/schema/index.ts";
import { Keyring } from "../../server/crypto/keyring.ts";
import { PhiCrypto } from "../../server/crypto/phi.ts";
import { DEMO_LOGINS, type DemoTotp, seedDemo } from "../../server/demo/seed.ts";
import type { Demographics } from "../../server/kernel/demographics.ts";

/** Keys shared by the orchestrator, Haven and the floor (env format of HAVEN_PHI_KEYS). */
export interface BenchKeys {
  phiKeys: string;
  blindIndexKey: string;
  keyring: Keyring;
}

/** Fresh random PHI and blind-index keys for one bench run. */
export function freshKeys(): BenchKeys {
  const phi = randomBytes(32);
  const blind = randomBytes(32);
  return {
    phiKeys: `bench1:${phi.toString("base64")}`,
    blindIndexKey: blind.toString("base64"),
    keyring: new Keyring({ phiKeys: [{ id: "bench1", key: phi }], blindIndexKey: blind }),
  };
}

/** What the scenarios need from the seeded database. */
export interface SeededData {
  url: string;
  name: string;
  organizationId: string;
  demoPatientId: string;
  demoPractitionerId: string;
  /** Generated practitioners with 24/7 15-minute hours (booking targets). */
  bookingPractitionerIds: string[];
  /** One generated patient per booking practitioner (a patient cannot be in two visits at once). */
  bookingPatientIds: string[];
  /** A local date (YYYY-MM-DD) with generated appointments on it. */
  busyDate: string;
  totp: DemoTotp[];
  timings: { seedDemoMs: number; generateMs: number; patients: number; appointments: number };
}

/** Create and migrate a fresh database named `haven_bench_<random>` beside `adminUrl`. */
export async function createBenchDatabase(
  adminUrl: string,
): Promise<{ url: string; name: string }> {
  const name = `${process.env.BENCH_DB_PREFIX ?? "haven_bench_"}${randomBytes(4).toString("hex")}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), name };
}

/** Drop a database made by {@link createBenchDatabase} (FORCE: disconnects leftovers). */
export async function dropBenchDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

const FAMILIES = ["Smith", "Garcia", "Nguyen", "Okafor", "Kowalski", "Haddad", "Ito", "Silva"];
const GIVEN = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun"];

/**
 * Migrate, seed the demo (Synthea bundles + demo logins), then generate `patientCount` patients
 * (sealed demographics and blind indexes) and `appointmentCount` non-overlapping appointments
 * (sealed reasons) over 50 generated practitioners, in INSERTs of 1,000 rows. Both phases are
 * timed (wall-clock ms).
 */
export async function seedBenchDatabase(
  url: string,
  name: string,
  keys: BenchKeys,
  counts: { patients: number; appointments: number },
): Promise<SeededData> {
  const handle = await openDatabase({ url, maxConnections: 4 });
  try {
    await handle.migrate();
    const crypto = new PhiCrypto(keys.keyring);
    const deps = { db: handle.db, crypto, now: () => new Date() };
    let t = performance.now();
    const demo = await seedDemo(deps);
    const seedDemoMs = performance.now() - t;
    if (!demo.patientId || !demo.totp) throw new Error("demo seed did not run");
    const [p] = await handle.db
      .select({ organizationId: patients.organizationId })
      .from(patients)
      .where(eq(patients.id, demo.patientId));
    const clinicianEmail = DEMO_LOGINS.find((l) => l.role === "clinician")?.email ?? "";
    const [clin] = await handle.db
      .select({ id: practitioners.id })
      .from(practitioners)
      .innerJoin(users, eq(users.id, practitioners.userId))
      .where(eq(users.emailIndex, crypto.index("user.email", clinicianEmail)));
    if (!p || !clin) throw new Error("demo organization or clinician missing");
    const org = p.organizationId;

    t = performance.now();
    const pracIds = Array.from({ length: 50 }, () => uuidv7());
    await handle.db
      .insert(practitioners)
      .values(pracIds.map((id, i) => ({ id, organizationId: org, name: `Dr. Bench ${i}` })));
    await handle.db.insert(availabilityRules).values(
      pracIds.flatMap((practitionerId) =>
        [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({
          id: uuidv7(),
          organizationId: org,
          practitionerId,
          weekday,
          startTime: "00:00:00",
          endTime: "24:00:00",
          slotMinutes: 15,
        })),
      ),
    );
    const patientIds: string[] = [];
    for (let done = 0; done < counts.patients; done += 1000) {
      const rows = Array.from({ length: Math.min(1000, counts.patients - done) }, (_, k) => {
        const i = done + k;
        const id = uuidv7();
        patientIds.push(id);
        const family = `${FAMILIES[i % FAMILIES.length]}${i}`;
        const birthDate = `19${String(40 + (i % 60)).padStart(2, "0")}-0${1 + (i % 9)}-1${i % 10}`;
        const mrn = `BENCH-${i}`;
        const d: Demographics = {
          name: { family, given: [GIVEN[i % GIVEN.length] as string], prefix: [], suffix: [] },
          birthDate,
          sex: i % 2 ? "female" : "male",
          phone: `+1555${String(i).padStart(7, "0")}`,
          email: `p${i}@bench.invalid`,
          address: {
            line: [`${i} Bench St`],
            city: "Springfield",
            state: "MA",
            postalCode: "01101",
            country: "US",
          },
          ssn: null,
          mrn,
          deceased: null,
        };
        return {
          id,
          organizationId: org,
          demographics: crypto.seal("patients", "demographics", id, d),
          mrnIndex: crypto.index("patient.mrn", mrn),
          familyBirthIndex: crypto.familyBirth(family, birthDate),
        };
      });
      await handle.db.insert(patients).values(rows);
    }
    // Appointments: practitioner k gets consecutive 15-minute slots from 2026-11-02T12:00Z,
    // 32 a day (12:00–20:00 UTC), so nothing overlaps and every day has visits.
    const base = Date.UTC(2026, 10, 2, 12, 0, 0);
    const perPrac = Math.ceil(counts.appointments / pracIds.length);
    for (let done = 0; done < counts.appointments; done += 1000) {
      const rows = Array.from({ length: Math.min(1000, counts.appointments - done) }, (_, k) => {
        const i = done + k;
        const prac = Math.floor(i / perPrac);
        const slot = i % perPrac;
        const startsAt = new Date(
          base + Math.floor(slot / 32) * 86_400_000 + (slot % 32) * 15 * 60_000,
        );
        const id = uuidv7();
        return {
          id,
          organizationId: org,
          // Time-major patient choice: visits at the same instant (one per practitioner) go to
          // distinct patients (appointments_patient_no_overlap).
          patientId: patientIds[(slot * pracIds.length + prac) % patientIds.length] as string,
          practitionerId: pracIds[prac] as string,
          startsAt,
          endsAt: new Date(startsAt.getTime() + 15 * 60_000),
          status: "booked" as const,
          reason: crypto.seal("appointments", "reason", id, "Follow-up visit"),
        };
      });
      await handle.db.insert(appointments).values(rows);
    }
    const generateMs = performance.now() - t;
    return {
      url,
      name,
      organizationId: org,
      demoPatientId: demo.patientId,
      demoPractitionerId: clin.id,
      bookingPractitionerIds: pracIds,
      bookingPatientIds: patientIds.slice(0, pracIds.length),
      busyDate: "2026-11-10",
      totp: demo.totp,
      timings: {
        seedDemoMs,
        generateMs,
        patients: counts.patients,
        appointments: counts.appointments,
      },
    };
  } finally {
    await handle.close();
  }
}
