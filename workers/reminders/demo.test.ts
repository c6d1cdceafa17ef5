import { eq } from "drizzle-orm";
import { afterAll, beforeAll, expect, it } from "vitest";
import { practitioners, reminders, users } from "../../db/schema/index.ts";
import {
  DEMO_LOGINS,
  DEMO_PATIENT_FHIR_ID,
  demoEmailAddress,
  seedDemo,
} from "../../server/demo/seed.ts";
import type { Demographics } from "../../server/kernel/demographics.ts";
import { DEFAULT_REMINDER_SETTINGS } from "../../server/reminders/settings.ts";
import { makeServiceApiKey } from "../../server/test/factory.ts";
import { actorFor, createHarness, type Harness } from "../../server/test/harness.ts";
import { killAll, spawnCron } from "./test/processes.ts";

/**
 * `npm run reminders` against the demo data (issue 9 point 6): the demo patient books a visit in
 * the portal, and the cron, on the log transport (no HAVEN_SMTP_URL), delivers its reminders.
 * Before the demo patients had a synthetic e-mail address every demo reminder ended
 * `failed no_contact_address`.
 */
let h: Harness;
let url: string;

beforeAll(async () => {
  h = await createHarness({ logLevel: "warn" });
  h.clock.now = new Date("2030-01-14T17:00:00Z");
  h.services.reminders = { ...DEFAULT_REMINDER_SETTINGS };
  url = await h.listen();
}, 180_000);
afterAll(async () => {
  await killAll();
  await h?.close();
});

it("the demo patient's reminders are delivered to the log transport", async () => {
  const demo = await seedDemo(h.deps);
  expect(demo.seeded).toBe(true);
  const patientId = demo.patientId as string;

  // The demo patient's address is the synthetic one, stored encrypted like any demographics.
  const asPatient = h.caller(await actorFor(h, await userIdOf("patient")));
  const record = await asPatient.patients.get({ patientId });
  const demographics = record.demographics as Demographics;
  expect(demographics.email).toBe(demoEmailAddress(DEMO_PATIENT_FHIR_ID));
  expect(demographics.email).toMatch(/@example\.org$/);

  // The patient books a free slot of the demo clinician, as in the portal.
  const [clinician] = await h.deps.db
    .select({ id: practitioners.id })
    .from(practitioners)
    .where(eq(practitioners.userId, await userIdOf("clinician")));
  const practitionerId = clinician?.id as string;
  const { slots } = await asPatient.appointments.slots({
    practitionerId,
    from: h.clock.now,
    to: new Date(h.clock.now.getTime() + 14 * 86_400_000),
  });
  // More than a day ahead, so that both default reminders (24 h and 2 h before) are created.
  const slot = slots.find((s) => s.startsAt.getTime() > h.clock.now.getTime() + 25 * 3_600_000);
  if (!slot) throw new Error("the demo clinician has no free slot in two weeks");
  const booked = await asPatient.appointments.book({ practitionerId, startsAt: slot.startsAt });

  // An hour before the visit both default reminders (24 h and 2 h before) are due.
  h.clock.now = new Date(slot.startsAt.getTime() - 3_600_000);
  const { key } = await makeServiceApiKey(h.deps, booked.organizationId);
  const run = spawnCron({ url, apiKey: key });
  expect(await run.exit, run.stderr()).toBe(0);
  const summary = run.summaries().at(-1);
  expect(summary).toMatchObject({ failed: 0 });
  expect(summary?.sent).toBeGreaterThan(0);
  expect(JSON.stringify(run.lines)).not.toContain("no_contact_address");

  const rows = await h.deps.db
    .select({ status: reminders.status, lastError: reminders.lastError })
    .from(reminders)
    .where(eq(reminders.appointmentId, booked.id));
  expect(rows.length).toBe(summary?.sent);
  // Haven settles an undeliverable reminder itself (`failed`, last_error no_contact_address)
  // without handing it to the worker, so the rows, not the worker's summary, tell.
  expect(rows.map((r) => r.status)).toEqual(rows.map(() => "sent"));
  expect(rows.filter((r) => r.lastError === "no_contact_address")).toEqual([]);
}, 180_000);

async function userIdOf(role: "patient" | "clinician"): Promise<string> {
  const email = DEMO_LOGINS.find((l) => l.role === role)?.email as string;
  const [u] = await h.deps.db
    .select({ id: users.id })
    .from(users)
    .where(eq(users.emailIndex, h.deps.crypto.index("user.email", email)))
    .limit(1);
  if (!u) throw new Error(`no demo ${role}`);
  return u.id;
}
