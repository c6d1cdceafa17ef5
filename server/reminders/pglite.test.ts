import { afterAll, beforeAll, expect, it } from "vitest";
import { type DatabaseHandle, openDatabase } from "../../db/client.ts";
import type { AuditActor } from "../kernel/audit.ts";
import { testCrypto } from "../test/db.ts";
import { makeOrganization, makeUser } from "../test/factory.ts";
import { claimDue, completeReminder, completeReminders, reminderStats } from "./service.ts";
import { DEFAULT_REMINDER_SETTINGS } from "./settings.ts";
import { seedDueReminders } from "./test/fixtures.ts";

/**
 * The queue's SQL (`FOR NO KEY UPDATE OF … SKIP LOCKED`, partial indexes, FILTER aggregates) on the
 * embedded default, so `npm start` with PGlite can run the cron too. PGlite is one connection, so
 * this proves the statements, not concurrency (that is `service.test.ts` on PostgreSQL).
 */
let db: DatabaseHandle;
beforeAll(async () => {
  db = await openDatabase({ pgliteDir: "memory://" });
  await db.migrate();
}, 120_000);
afterAll(async () => {
  await db?.close();
});

it("claims, completes and counts on PGlite", async () => {
  const clock = { now: new Date("2030-05-01T10:00:00Z") };
  const deps = { db: db.db, crypto: testCrypto(), now: () => new Date(clock.now) };
  const org = await makeOrganization(deps);
  const seeded = await seedDueReminders(deps, { organizationId: org, count: 3, now: clock.now });
  const service = await makeUser(deps, "service", org);
  const actor = {
    userId: service.userId,
    role: "service" as const,
    organizationId: org,
    sessionId: "test",
    patientId: null,
    practitionerId: null,
  };
  const audit: AuditActor = { ...actor, ip: null, requestId: null };
  const input = { limit: 10, leaseSeconds: 30, channels: ["email" as const] };
  const batch = await claimDue(deps, DEFAULT_REMINDER_SETTINGS, actor, audit, input);
  expect(batch.reminders.map((r) => r.id).sort()).toEqual(seeded.map((s) => s.reminderId).sort());
  expect((await claimDue(deps, DEFAULT_REMINDER_SETTINGS, actor, audit, input)).reminders).toEqual(
    [],
  );
  const [a] = batch.reminders;
  expect(
    await completeReminder(deps, DEFAULT_REMINDER_SETTINGS, actor, audit, {
      id: a?.id as string,
      version: a?.version as number,
      outcome: "sent",
      providerMessageId: "<m@x>",
    }),
  ).toMatchObject({ status: "sent" });
  clock.now = new Date(clock.now.getTime() + 31_000);
  const staff = await makeUser(deps, "staff", org);
  const stats = await reminderStats(
    deps,
    { ...actor, userId: staff.userId, role: "staff" },
    { ...audit, userId: staff.userId, role: "staff" },
  );
  expect(stats).toMatchObject({
    byStatus: { sent: 1, claimed: 2, pending: 0 },
    expiredLeases: 2,
    due: 0,
  });
  const again = await claimDue(deps, DEFAULT_REMINDER_SETTINGS, actor, audit, input);
  expect(again.reminders.map((r) => r.attempt)).toEqual([2, 2]);
  // completeMany's set-based UPDATE … FROM jsonb_to_recordset and multi-row audit INSERT.
  const [b, c] = again.reminders;
  const many = await completeReminders(deps, DEFAULT_REMINDER_SETTINGS, actor, audit, {
    items: [
      { id: b?.id as string, version: b?.version as number, outcome: "retry", error: "smtp_451" },
      { id: c?.id as string, version: (c?.version as number) - 1, outcome: "sent" },
    ],
  });
  expect(many.results).toEqual([
    expect.objectContaining({ ok: true, status: "pending", attempts: 2 }),
    { ok: false, id: c?.id, code: "CONFLICT", reason: "stale_claim" },
  ]);
});
