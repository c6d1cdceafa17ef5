import { eq } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import { availabilityRules, organizations, patients } from "../../db/schema/index.ts";
import type { Actor } from "../kernel/roles.ts";
import {
  makeOrganization,
  makePatient,
  makePractitioner,
  makeUser,
  type TestUser,
} from "../test/factory.ts";
import { actorFor, type Harness } from "../test/harness.ts";

/**
 * Test fixtures for the appointments suites (not a test file): a clinic in a given IANA zone
 * with one clinician-practitioner working weekdays, a front-desk user and a portal patient.
 */
export interface Clinic {
  organizationId: string;
  timeZone: string;
  practitionerId: string;
  clinician: TestUser & { actor: Actor };
  staff: TestUser & { actor: Actor };
  patient: { id: string; user: TestUser; actor: Actor };
}

/** Weekly hours rows, written directly (the availability procedures have their own tests). */
export async function setHours(
  h: Harness,
  organizationId: string,
  practitionerId: string,
  windows: { weekday: number; start: string; end: string; slotMinutes: number }[],
): Promise<void> {
  await h.deps.db
    .delete(availabilityRules)
    .where(eq(availabilityRules.practitionerId, practitionerId));
  if (windows.length === 0) return;
  await h.deps.db.insert(availabilityRules).values(
    windows.map((w) => ({
      id: uuidv7(),
      organizationId,
      practitionerId,
      weekday: w.weekday,
      startTime: `${w.start}:00`,
      endTime: `${w.end}:00`,
      slotMinutes: w.slotMinutes,
    })),
  );
}

export const WEEKDAYS = [1, 2, 3, 4, 5];

/** A portal patient of `organizationId` with a signed-in actor. */
export async function makePortalPatient(
  h: Harness,
  organizationId: string,
): Promise<{ id: string; user: TestUser; actor: Actor }> {
  const p = await makePatient(h.deps, organizationId);
  const user = await makeUser(h.deps, "patient", organizationId);
  await h.deps.db.update(patients).set({ userId: user.userId }).where(eq(patients.id, p.id));
  return { id: p.id, user, actor: await actorFor(h, user.userId) };
}

/** A clinic open Monday–Friday 09:00–12:00 local with 30-minute slots. */
export async function makeClinic(h: Harness, timeZone = "America/New_York"): Promise<Clinic> {
  const organizationId = await makeOrganization(h.deps);
  await h.deps.db
    .update(organizations)
    .set({ timezone: timeZone })
    .where(eq(organizations.id, organizationId));
  const clinicianUser = await makeUser(h.deps, "clinician", organizationId);
  const practitionerId = await makePractitioner(h.deps, organizationId, clinicianUser.userId);
  await setHours(
    h,
    organizationId,
    practitionerId,
    WEEKDAYS.map((weekday) => ({ weekday, start: "09:00", end: "12:00", slotMinutes: 30 })),
  );
  const staffUser = await makeUser(h.deps, "staff", organizationId);
  return {
    organizationId,
    timeZone,
    practitionerId,
    clinician: { ...clinicianUser, actor: await actorFor(h, clinicianUser.userId) },
    staff: { ...staffUser, actor: await actorFor(h, staffUser.userId) },
    patient: await makePortalPatient(h, organizationId),
  };
}
