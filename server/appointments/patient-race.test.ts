import { and, eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient, type HavenClient, isHavenError } from "../../client-sdk/index.ts";
import { appointments } from "../../db/schema/index.ts";
import { loginWithMfa, makePatient, makePractitioner } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { type Clinic, makeClinic, setHours, WEEKDAYS } from "./fixtures.ts";

/**
 * Issue 13 (Low): one patient booked with several practitioners at the same time, concurrently.
 * The service's `patient_double_booked` check is racy on its own; the exclusion constraint
 * `appointments_patient_no_overlap` (migration 0008) makes exactly one booking win, and every loser
 * gets CONFLICT `patient_double_booked`, never a 500 and never a second row.
 */
let h: Harness;
let url: string;
let c: Clinic;
const PRACTITIONERS = 8;
const ROUNDS = 5;
const practitionerIds: string[] = [];

beforeAll(async () => {
  h = await createHarness({ maxConnections: 20 });
  h.clock.now = new Date("2027-06-01T12:00:00Z");
  c = await makeClinic(h);
  for (let i = 0; i < PRACTITIONERS; i++) {
    const id = await makePractitioner(h.deps, c.organizationId);
    await setHours(
      h,
      c.organizationId,
      id,
      WEEKDAYS.map((weekday) => ({ weekday, start: "08:00", end: "17:00", slotMinutes: 30 })),
    );
    practitionerIds.push(id);
  }
  url = await h.listen();
}, 120_000);
afterAll(async () => {
  await h?.close();
});

type Outcome = "ok" | string;

async function outcome(p: Promise<unknown>): Promise<Outcome> {
  try {
    await p;
    return "ok";
  } catch (err) {
    if (isHavenError(err)) return `${err.data?.code}:${err.data?.reason}`;
    throw err;
  }
}

describe("one patient, several practitioners, the same time, in parallel", () => {
  it(`${ROUNDS} rounds × ${PRACTITIONERS} parallel bookings → exactly one per round`, async () => {
    const tokens = await Promise.all(
      Array.from({ length: PRACTITIONERS }, () => loginWithMfa(h, url, c.staff)),
    );
    const clients: HavenClient[] = tokens.map((token) => createHavenClient({ url, token }));
    for (let round = 0; round < ROUNDS; round++) {
      const patient = await makePatient(h.deps, c.organizationId);
      // Monday 2027-06-07 + round days, 10:00 EDT; the slots exist for every practitioner.
      const startsAt = new Date(Date.UTC(2027, 5, 7 + round, 14, 0));
      let go!: () => void;
      const gate = new Promise<void>((r) => {
        go = r;
      });
      const running = clients.map(async (client, i) => {
        await gate;
        return outcome(
          client.appointments.book.mutate({
            practitionerId: practitionerIds[i] ?? "",
            patientId: patient.id,
            startsAt,
          }),
        );
      });
      go();
      const outcomes = await Promise.all(running);
      expect(
        outcomes.filter((o) => o === "ok"),
        `round ${round}`,
      ).toHaveLength(1);
      expect(new Set(outcomes.filter((o) => o !== "ok"))).toEqual(
        new Set(["CONFLICT:patient_double_booked"]),
      );
      const rows = await h.deps.db
        .select({ id: appointments.id })
        .from(appointments)
        .where(
          and(
            eq(appointments.patientId, patient.id),
            inArray(appointments.status, ["booked", "checked_in"]),
          ),
        );
      expect(rows).toHaveLength(1);
    }
  }, 120_000);
});
