import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHavenClient, type HavenClient, isHavenError } from "../../client-sdk/index.ts";
import {
  appointments,
  auditEvents,
  organizations,
  patients,
  reminders,
} from "../../db/schema/index.ts";
import { cancelReminders, scheduleReminders } from "../appointments/reminders.ts";
import { DEFAULT_SCHEDULING_SETTINGS } from "../appointments/settings.ts";
import type { Actor } from "../kernel/roles.ts";
import {
  makeOrganization,
  makePatient,
  makePractitioner,
  makeServiceApiKey,
  makeUser,
} from "../test/factory.ts";
import { actorFor, createHarness, type Harness } from "../test/harness.ts";
import { DEFAULT_REMINDER_SETTINGS } from "./settings.ts";
import { SECRET_REASON, type SeededReminder, seedDueReminders } from "./test/fixtures.ts";

/**
 * The reminder queue through the real router, HTTP and Postgres: claims (skip-locked, leased,
 * minimum necessary, audited), reports, backoff, dead letters, the appointment lifecycle rules and
 * the staff views. The cron process itself is tested in `workers/reminders/cron.test.ts`.
 */
let h: Harness;
let url: string;
let orgA: string;
let orgB: string;
let keyA: string;
let keyB: string;
let staffA: Actor;
let adminB: Actor;
let clinicianA: Actor;
let patientUserA: Actor;
let queueA: HavenClient;
let queueB: HavenClient;

beforeAll(async () => {
  h = await createHarness({ maxConnections: 14 });
  h.clock.now = new Date("2031-03-10T15:00:00Z");
  orgA = await makeOrganization(h.deps);
  orgB = await makeOrganization(h.deps);
  await h.deps.db
    .update(organizations)
    .set({ timezone: "Europe/Berlin", name: "Praxis Mitte" })
    .where(eq(organizations.id, orgA));
  keyA = (await makeServiceApiKey(h.deps, orgA)).key;
  keyB = (await makeServiceApiKey(h.deps, orgB)).key;
  staffA = await actorFor(h, (await makeUser(h.deps, "staff", orgA)).userId);
  adminB = await actorFor(h, (await makeUser(h.deps, "admin", orgB)).userId);
  clinicianA = await actorFor(h, (await makeUser(h.deps, "clinician", orgA)).userId);
  patientUserA = await actorFor(h, (await makeUser(h.deps, "patient", orgA)).userId);
  url = await h.listen();
  queueA = createHavenClient({ url, token: keyA });
  queueB = createHavenClient({ url, token: keyB });
});
afterAll(async () => {
  await h?.close();
});
beforeEach(async () => {
  h.services.reminders = { ...DEFAULT_REMINDER_SETTINGS };
  // Every test starts from an empty queue: settle whatever an earlier test left due.
  await h.deps.db
    .update(reminders)
    .set({ status: "cancelled", lastError: "test_reset" })
    .where(eq(reminders.status, "pending"));
  await h.deps.db
    .update(reminders)
    .set({ status: "cancelled", lastError: "test_reset" })
    .where(eq(reminders.status, "claimed"));
});

const advance = (seconds: number) => {
  h.clock.now = new Date(h.clock.now.getTime() + seconds * 1000);
};

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    if (isHavenError(err)) return err.data?.code ?? "?";
    const code = (err as { code?: string }).code;
    if (code) return code;
    throw err;
  }
}

async function row(id: string) {
  const [r] = await h.deps.db.select().from(reminders).where(eq(reminders.id, id));
  if (!r) throw new Error("no reminder");
  return r;
}

const claim = (client: HavenClient, limit = 100, leaseSeconds = 60) =>
  client.reminders.claimDue.mutate({ limit, leaseSeconds });

describe("reminders.claimDue", () => {
  it("hands out only due reminders of the key's organization, with the minimum necessary", async () => {
    const due = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 3,
      now: h.clock.now,
    });
    const notYet = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 1,
      now: h.clock.now,
      startsAt: () => new Date(h.clock.now.getTime() + 3 * 86_400_000),
    });
    const otherOrg = await seedDueReminders(h.deps, {
      organizationId: orgB,
      count: 2,
      now: h.clock.now,
    });

    const batch = await claim(queueA);
    expect(batch.skipped).toBe(0);
    expect(batch.reminders.map((r) => r.id).sort()).toEqual(due.map((d) => d.reminderId).sort());
    const first = batch.reminders.find((r) => r.id === due[0]?.reminderId);
    const seeded = due[0] as SeededReminder;
    expect(first).toEqual({
      id: seeded.reminderId,
      version: 2,
      attempt: 1,
      channel: "email",
      recipient: { firstName: seeded.demographics.name.given[0], address: seeded.email },
      appointment: {
        startsAt: seeded.startsAt,
        localStart: expect.stringMatching(/^2031-03-10T\d{2}:\d{2}\+01:00$/) as string,
      },
      clinic: { name: "Praxis Mitte", timezone: "Europe/Berlin" },
    });
    // 17:00Z in Berlin (CET, before the March change) is 18:00 local.
    expect(first?.appointment.localStart).toBe(
      `2031-03-10T${String(seeded.startsAt.getUTCHours() + 1).padStart(2, "0")}:${String(seeded.startsAt.getUTCMinutes()).padStart(2, "0")}+01:00`,
    );
    const wire = JSON.stringify(batch);
    for (const d of due) {
      expect(wire).not.toContain(d.demographics.name.family);
      expect(wire).not.toContain(d.patientId);
      expect(wire).not.toContain(d.appointmentId);
      expect(wire).not.toContain(d.demographics.ssn as string);
      expect(wire).not.toContain(d.demographics.phone as string);
    }
    expect(wire).not.toContain(SECRET_REASON);

    const stored = await row(seeded.reminderId);
    expect(stored).toMatchObject({ status: "claimed", attempts: 1, version: 2 });
    expect(stored.leaseUntil?.getTime()).toBe(h.clock.now.getTime() + 60_000);
    expect((await row(notYet[0]?.reminderId as string)).status).toBe("pending");
    expect((await row(otherOrg[0]?.reminderId as string)).status).toBe("pending");

    // Each hand-out is a PHI disclosure, audited with the patient id (ids only).
    const audits = await h.deps.db
      .select()
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.action, "reminder.claim"),
          eq(auditEvents.resourceId, seeded.reminderId),
        ),
      );
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({
      patientId: seeded.patientId,
      outcome: "allowed",
      actorRole: "service",
    });
    expect(JSON.stringify(audits)).not.toContain(seeded.email as string);

    // Organization B's key sees only B's reminders.
    const b = await claim(queueB);
    expect(b.reminders.map((r) => r.id).sort()).toEqual(otherOrg.map((d) => d.reminderId).sort());
  });

  it("never hands the same reminder to two concurrent callers (FOR UPDATE SKIP LOCKED)", async () => {
    const seeded = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 400,
      now: h.clock.now,
    });
    const batches = await Promise.all(
      Array.from({ length: 8 }, () =>
        createHavenClient({ url, token: keyA }).reminders.claimDue.mutate({
          limit: 100,
          leaseSeconds: 60,
        }),
      ),
    );
    const ids = batches.flatMap((b) => b.reminders.map((r) => r.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(400);
    expect(new Set(ids)).toEqual(new Set(seeded.map((s) => s.reminderId)));
    expect(batches.filter((b) => b.reminders.length > 0).length).toBeGreaterThan(1);
  });

  it("reclaims an expired lease with a new token; the old claim's report is refused and audited", async () => {
    const [s] = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 1,
      now: h.clock.now,
    });
    const id = (s as SeededReminder).reminderId;
    const first = (await claim(queueA, 10, 30)).reminders[0];
    expect(first?.attempt).toBe(1);
    advance(29);
    expect((await claim(queueA, 10, 30)).reminders).toHaveLength(0);
    advance(2);
    const second = (await claim(queueA, 10, 30)).reminders[0];
    expect(second).toMatchObject({ id, attempt: 2 });
    expect(second?.version).toBeGreaterThan(first?.version as number);

    const late = queueA.reminders.complete.mutate({
      id,
      version: first?.version as number,
      outcome: "sent",
      providerMessageId: "<late@x>",
    });
    expect(await codeOf(late)).toBe("CONFLICT");
    const [stale] = await h.deps.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "reminder.complete"), eq(auditEvents.resourceId, id)));
    expect(stale).toMatchObject({ outcome: "error" });
    expect(stale?.details).toMatchObject({ reason: "stale_claim", outcome: "sent" });

    const done = await queueA.reminders.complete.mutate({
      id,
      version: second?.version as number,
      outcome: "sent",
      providerMessageId: "<ok@x>",
    });
    expect(done).toEqual({ id, status: "sent", attempts: 2, nextAttemptAt: null });
    expect(await row(id)).toMatchObject({
      status: "sent",
      providerMessageId: "<ok@x>",
      leaseUntil: null,
    });
    expect((await row(id)).sentAt?.getTime()).toBe(h.clock.now.getTime());
  });

  it("leaves other channels to workers that ask for them", async () => {
    const [s] = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 1,
      now: h.clock.now,
    });
    await h.deps.db
      .update(reminders)
      .set({ channel: "sms" })
      .where(eq(reminders.id, (s as SeededReminder).reminderId));
    expect((await claim(queueA)).reminders).toHaveLength(0);
    const sms = await queueA.reminders.claimDue.mutate({
      limit: 5,
      leaseSeconds: 60,
      channels: ["sms"],
    });
    expect(sms.reminders[0]?.recipient.address).toBe((s as SeededReminder).demographics.phone);
  });
});

describe("reminders.complete: retries, backoff and dead letters", () => {
  it("backs off exponentially (base · 2^(n−1), capped) and dead-letters after the attempt budget", async () => {
    h.services.reminders = { maxAttempts: 4, backoffBaseSeconds: 10, backoffMaxSeconds: 30 };
    const [s] = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 1,
      now: h.clock.now,
    });
    const id = (s as SeededReminder).reminderId;
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const c = (await claim(queueA)).reminders[0];
      expect(c).toMatchObject({ id, attempt });
      const res = await queueA.reminders.complete.mutate({
        id,
        version: c?.version as number,
        outcome: "retry",
        error: "smtp_451_4.3.0",
      });
      expect(res.status).toBe("pending");
      const delay = ((res.nextAttemptAt as Date).getTime() - h.clock.now.getTime()) / 1000;
      delays.push(delay);
      advance(delay - 1);
      expect((await claim(queueA)).reminders).toHaveLength(0); // not before its time
      advance(1);
    }
    expect(delays).toEqual([10, 20, 30]); // 40 capped at 30
    expect(await row(id)).toMatchObject({
      status: "pending",
      attempts: 3,
      lastError: "smtp_451_4.3.0",
    });

    const last = (await claim(queueA)).reminders[0];
    expect(last?.attempt).toBe(4);
    const res = await queueA.reminders.complete.mutate({
      id,
      version: last?.version as number,
      outcome: "retry",
      error: "smtp_451",
    });
    expect(res).toEqual({ id, status: "failed", attempts: 4, nextAttemptAt: null });
    advance(3600);
    expect((await claim(queueA)).reminders).toHaveLength(0);

    const dead = await h.caller(staffA).reminders.list({ status: "failed" });
    expect(dead.items.map((i) => i.id)).toContain(id);
    expect(dead.items.find((i) => i.id === id)).toMatchObject({
      attempts: 4,
      lastError: "smtp_451",
      patientId: (s as SeededReminder).patientId,
    });
  });

  it("a permanent failure dead-letters at once; a release gives the claim back uncounted", async () => {
    const [a, b] = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 2,
      now: h.clock.now,
    });
    const batch = (await claim(queueA)).reminders;
    const ca = batch.find((r) => r.id === a?.reminderId);
    const cb = batch.find((r) => r.id === b?.reminderId);
    expect(
      await queueA.reminders.complete.mutate({
        id: ca?.id as string,
        version: ca?.version as number,
        outcome: "failed",
        error: "invalid_address",
      }),
    ).toMatchObject({ status: "failed", attempts: 1 });
    const released = await queueA.reminders.complete.mutate({
      id: cb?.id as string,
      version: cb?.version as number,
      outcome: "released",
    });
    expect(released).toEqual({
      id: cb?.id,
      status: "pending",
      attempts: 0,
      nextAttemptAt: h.clock.now,
    });
    const again = (await claim(queueA)).reminders;
    expect(again.map((r) => [r.id, r.attempt])).toEqual([[cb?.id, 1]]);
  });

  it("a worker that dies holding the last attempt leaves a dead letter, not an endless loop", async () => {
    h.services.reminders = { maxAttempts: 2, backoffBaseSeconds: 10, backoffMaxSeconds: 10 };
    const [s] = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 1,
      now: h.clock.now,
    });
    const id = (s as SeededReminder).reminderId;
    expect((await claim(queueA, 5, 5)).reminders).toHaveLength(1);
    advance(6);
    expect((await claim(queueA, 5, 5)).reminders[0]?.attempt).toBe(2);
    advance(6);
    const third = await claim(queueA, 5, 5);
    expect(third).toMatchObject({ reminders: [], skipped: 1 });
    expect(await row(id)).toMatchObject({
      status: "failed",
      lastError: "lease_expired",
      attempts: 2,
    });
  });

  it("rejects free-text errors (SMTP replies quote addresses) and inconsistent reports", async () => {
    const [s] = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 1,
      now: h.clock.now,
    });
    const c = (await claim(queueA)).reminders[0];
    const base = { id: (s as SeededReminder).reminderId, version: c?.version as number };
    for (const bad of [
      { ...base, outcome: "retry" as const, error: "550 <jane@example.test> unknown" },
      { ...base, outcome: "retry" as const },
      { ...base, outcome: "failed" as const, error: "x", providerMessageId: "<m@x>" },
    ]) {
      try {
        await queueA.reminders.complete.mutate(bad);
        expect.unreachable();
      } catch (err) {
        expect(isHavenError(err) && err.data?.code).toBe("BAD_REQUEST");
        expect(JSON.stringify(err)).not.toContain("jane@example.test");
      }
    }
    expect((await row(base.id)).status).toBe("claimed");
    expect(
      await codeOf(
        queueB.reminders.complete.mutate({ ...base, outcome: "sent", providerMessageId: "<m@x>" }),
      ),
    ).toBe("NOT_FOUND");
  });
});

describe("appointment lifecycle: a cancelled or moved visit is never reminded", () => {
  it("a visit whose change is in flight is skipped, then settled by that change", async () => {
    const [s] = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 1,
      now: h.clock.now,
    });
    const seeded = s as SeededReminder;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let locked: () => void = () => {};
    const isLocked = new Promise<void>((r) => {
      locked = r;
    });
    // A cancellation holding the appointment row, not yet committed (as appointments.cancel does
    // before it reaches the reminders).
    const cancelling = h.deps.db.transaction(async (tx) => {
      await tx
        .update(appointments)
        .set({ status: "cancelled" })
        .where(eq(appointments.id, seeded.appointmentId));
      locked();
      await gate;
      await cancelReminders(tx, seeded.appointmentId, h.clock.now, "appointment_cancelled");
    });
    await isLocked;
    expect(await claim(queueA)).toEqual({ reminders: [], skipped: 0, leaseSeconds: 60 });
    release();
    await cancelling;
    expect((await claim(queueA)).reminders).toHaveLength(0);
    expect(await row(seeded.reminderId)).toMatchObject({
      status: "cancelled",
      lastError: "appointment_cancelled",
    });
  });

  async function bookWithHooks(startsAt: Date) {
    const practitionerId = await makePractitioner(h.deps, orgA);
    const patient = await makePatient(h.deps, orgA);
    const appointmentId = crypto.randomUUID();
    await h.deps.db.insert(appointments).values({
      id: appointmentId,
      organizationId: orgA,
      patientId: patient.id,
      practitionerId,
      startsAt,
      endsAt: new Date(startsAt.getTime() + 30 * 60_000),
      status: "booked",
    });
    const bookedAt = new Date(startsAt.getTime() - 3 * 86_400_000);
    await h.deps.db.transaction((tx) =>
      scheduleReminders(
        tx,
        { id: appointmentId, organizationId: orgA, startsAt },
        DEFAULT_SCHEDULING_SETTINGS,
        bookedAt,
      ),
    );
    return { appointmentId, patient };
  }

  it("end to end through appointments.book / reschedule / cancel: only the current time is reminded", async () => {
    const practitionerId = await makePractitioner(h.deps, orgA);
    const patient = await makePatient(h.deps, orgA);
    const startsAt = new Date(h.clock.now.getTime() + 3 * 86_400_000);
    const visit = await h.caller(staffA).appointments.book({
      practitionerId,
      patientId: patient.id,
      startsAt,
      endsAt: new Date(startsAt.getTime() + 30 * 60_000),
      reason: SECRET_REASON,
      override: { reason: "phone booking outside hours" },
    });
    expect((await claim(queueA)).reminders).toHaveLength(0); // nothing due yet
    advance(2 * 86_400 + 60); // the 24 h reminder is due, the 2 h one is not
    const [held] = (await claim(queueA)).reminders;
    expect(held?.appointment.startsAt).toEqual(startsAt);
    expect(JSON.stringify(held)).not.toContain(SECRET_REASON);

    const later = new Date(startsAt.getTime() + 86_400_000);
    const moved = await h.caller(staffA).appointments.reschedule({
      appointmentId: visit.id,
      version: visit.version,
      startsAt: later,
      endsAt: new Date(later.getTime() + 30 * 60_000),
      override: { reason: "patient asked" },
    });
    const stale = queueA.reminders.complete.mutate({
      id: held?.id as string,
      version: held?.version as number,
      outcome: "sent",
      providerMessageId: "<m@x>",
    });
    expect(await codeOf(stale)).toBe("CONFLICT");
    expect((await claim(queueA)).reminders).toHaveLength(0); // the new 24 h reminder is a day away
    advance(86_400);
    const [current] = (await claim(queueA)).reminders;
    expect(current).toMatchObject({ id: held?.id, attempt: 1 });
    expect(current?.appointment.startsAt).toEqual(later);

    await h.caller(staffA).appointments.cancel({
      appointmentId: moved.id,
      version: moved.version,
      reason: "patient unwell",
    });
    expect(
      await codeOf(
        queueA.reminders.complete.mutate({
          id: current?.id as string,
          version: current?.version as number,
          outcome: "sent",
          providerMessageId: "<m@x>",
        }),
      ),
    ).toBe("CONFLICT");
    advance(86_400);
    expect((await claim(queueA)).reminders).toHaveLength(0);
    const rows = await h.deps.db
      .select()
      .from(reminders)
      .where(eq(reminders.appointmentId, visit.id));
    expect(rows.map((r) => r.status)).toEqual(["cancelled", "cancelled"]);
  });

  it("booking hooks create due rows; cancelling through the hook removes them from the queue", async () => {
    const startsAt = new Date(h.clock.now.getTime() + 60 * 60_000); // both the 24 h and 2 h reminders are due
    const { appointmentId } = await bookWithHooks(startsAt);
    await h.deps.db.transaction((tx) =>
      cancelReminders(tx, appointmentId, h.clock.now, "appointment_cancelled"),
    );
    expect((await claim(queueA)).reminders).toHaveLength(0);
  });

  it("a reschedule while a worker holds the claim makes its report stale", async () => {
    const startsAt = new Date(h.clock.now.getTime() + 60 * 60_000);
    const { appointmentId } = await bookWithHooks(startsAt);
    const claimed = (await claim(queueA)).reminders;
    expect(claimed).toHaveLength(2);
    const moved = new Date(startsAt.getTime() + 7 * 86_400_000);
    await h.deps.db
      .update(appointments)
      .set({ startsAt: moved, endsAt: new Date(moved.getTime() + 1_800_000) })
      .where(eq(appointments.id, appointmentId));
    await h.deps.db.transaction((tx) =>
      scheduleReminders(
        tx,
        { id: appointmentId, organizationId: orgA, startsAt: moved },
        DEFAULT_SCHEDULING_SETTINGS,
        h.clock.now,
      ),
    );
    for (const c of claimed) {
      expect(
        await codeOf(
          queueA.reminders.complete.mutate({
            id: c.id,
            version: c.version,
            outcome: "sent",
            providerMessageId: "<m@x>",
          }),
        ),
      ).toBe("CONFLICT");
    }
    const rows = await h.deps.db
      .select()
      .from(reminders)
      .where(eq(reminders.appointmentId, appointmentId));
    expect(rows.map((r) => r.status).sort()).toEqual(["pending", "pending"]);
    expect(rows.every((r) => r.dueAt.getTime() > h.clock.now.getTime())).toBe(true);
  });

  it("settles every due reminder that must not be sent, and hands out none of them", async () => {
    const seeded = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 9,
      now: h.clock.now,
      demographics: (i, d) =>
        i === 5 ? { ...d, deceased: "2031-01-01T00:00:00Z" } : i === 6 ? { ...d, email: null } : d,
    });
    const [cancelled, checkedIn, completed, moved, started, deceased, noEmail, fine, unreadable] =
      seeded as [SeededReminder, ...SeededReminder[]] & SeededReminder[];
    const setAppt = (s: SeededReminder | undefined, v: Partial<typeof appointments.$inferInsert>) =>
      h.deps.db
        .update(appointments)
        .set(v)
        .where(eq(appointments.id, (s as SeededReminder).appointmentId));
    await setAppt(cancelled, { status: "cancelled" });
    await setAppt(checkedIn, { status: "checked_in" });
    await setAppt(completed, { status: "completed" });
    const m = new Date((moved as SeededReminder).startsAt.getTime() + 86_400_000);
    await setAppt(moved, { startsAt: m, endsAt: new Date(m.getTime() + 900_000) });
    const past = new Date(h.clock.now.getTime() - 60_000);
    await setAppt(started, { startsAt: past, endsAt: new Date(past.getTime() + 900_000) });
    await h.deps.db
      .update(reminders)
      .set({ dueAt: new Date(past.getTime() - 86_400_000) })
      .where(eq(reminders.id, (started as SeededReminder).reminderId));
    // A ciphertext moved from another row fails to decrypt (AAD): that record alone is set aside.
    const u = unreadable as SeededReminder;
    await h.deps.db
      .update(patients)
      .set({
        demographics: h.deps.crypto.seal(
          "patients",
          "demographics",
          u.appointmentId,
          u.demographics,
        ),
      })
      .where(eq(patients.id, u.patientId));

    const batch = await claim(queueA);
    expect(batch.reminders.map((r) => r.id)).toEqual([(fine as SeededReminder).reminderId]);
    expect(batch.skipped).toBe(8);
    const expected: [SeededReminder | undefined, string, string][] = [
      [cancelled, "cancelled", "appointment_cancelled"],
      [checkedIn, "cancelled", "visit_under_way"],
      [completed, "cancelled", "visit_over"],
      [moved, "cancelled", "appointment_moved"],
      [started, "cancelled", "too_late"],
      [deceased, "cancelled", "patient_deceased"],
      [noEmail, "failed", "no_contact_address"],
      [unreadable, "failed", "record_unreadable"],
    ];
    for (const [s, status, lastError] of expected) {
      expect(await row((s as SeededReminder).reminderId)).toMatchObject({ status, lastError });
    }
    const dead = await h.caller(staffA).reminders.list({ status: "failed" });
    expect(dead.items.map((i) => i.id)).toContain((noEmail as SeededReminder).reminderId);
  });
});

describe("staff views: stats, list, retry", () => {
  it("counts the organization's queue, pages through it and re-queues a dead letter", async () => {
    const org = await makeOrganization(h.deps);
    const staff = await actorFor(h, (await makeUser(h.deps, "staff", org)).userId);
    const key = createHavenClient({ url, token: (await makeServiceApiKey(h.deps, org)).key });
    const seeded = await seedDueReminders(h.deps, {
      organizationId: org,
      count: 5,
      now: h.clock.now,
    });
    await seedDueReminders(h.deps, {
      organizationId: org,
      count: 1,
      now: h.clock.now,
      startsAt: () => new Date(h.clock.now.getTime() + 5 * 86_400_000),
    });
    const before = await h.caller(staff).reminders.stats();
    expect(before.byStatus).toEqual({ pending: 6, claimed: 0, sent: 0, failed: 0, cancelled: 0 });
    expect(before.due).toBe(5);
    expect(before.oldestDueAt).toEqual(
      seeded.map((s) => s.dueAt).sort((a, b) => a.getTime() - b.getTime())[0],
    );

    const batch = (await key.reminders.claimDue.mutate({ limit: 3, leaseSeconds: 30 })).reminders;
    const [x, y, z] = batch;
    await key.reminders.complete.mutate({
      id: x?.id as string,
      version: x?.version as number,
      outcome: "sent",
      providerMessageId: "<a@x>",
    });
    await key.reminders.complete.mutate({
      id: y?.id as string,
      version: y?.version as number,
      outcome: "failed",
      error: "invalid_address",
    });
    advance(31);
    const after = await h.caller(staff).reminders.stats();
    expect(after.byStatus).toEqual({ pending: 3, claimed: 1, sent: 1, failed: 1, cancelled: 0 });
    expect(after.expiredLeases).toBe(1);
    expect(after.due).toBe(2);
    expect(z).toBeDefined();

    // Pagination: latest due first, three pages of 2.
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await h
        .caller(staff)
        .reminders.list({ limit: 2, ...(cursor ? { cursor } : {}) });
      seen.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toHaveLength(6);
    expect(new Set(seen).size).toBe(6);
    expect(await codeOf(h.caller(staff).reminders.list({ cursor: "bm9wZQ" }))).toBe("BAD_REQUEST");

    // Retry the dead letter: pending, due now, attempts reset, claimable again.
    expect(await codeOf(h.caller(staff).reminders.retry({ id: x?.id as string }))).toBe("CONFLICT");
    expect(await codeOf(h.caller(adminB).reminders.retry({ id: y?.id as string }))).toBe(
      "NOT_FOUND",
    );
    const retried = await h.caller(staff).reminders.retry({ id: y?.id as string });
    expect(retried).toMatchObject({ id: y?.id, status: "pending", attempts: 0, lastError: null });
    expect(retried.nextAttemptAt).toEqual(h.clock.now);
    const again = (await key.reminders.claimDue.mutate({ limit: 10, leaseSeconds: 30 })).reminders;
    expect(again.map((r) => r.id)).toContain(y?.id);
    const audit = await h.deps.db
      .select()
      .from(auditEvents)
      .where(
        and(eq(auditEvents.action, "reminder.retry"), eq(auditEvents.resourceId, y?.id as string)),
      );
    expect(audit.map((a) => a.outcome).sort()).toEqual(["allowed", "denied"]);
  });

  it("refuses a retry once the visit is no longer upcoming", async () => {
    const [s] = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 1,
      now: h.clock.now,
    });
    const c = (await claim(queueA)).reminders[0];
    await queueA.reminders.complete.mutate({
      id: c?.id as string,
      version: c?.version as number,
      outcome: "failed",
      error: "invalid_address",
    });
    await h.deps.db
      .update(appointments)
      .set({ status: "cancelled" })
      .where(eq(appointments.id, (s as SeededReminder).appointmentId));
    try {
      await h.caller(staffA).reminders.retry({ id: c?.id as string });
      expect.unreachable();
    } catch (err) {
      expect((err as { code?: string }).code).toBe("CONFLICT");
      expect((err as { cause?: { reason?: string } }).cause?.reason).toBe(
        "appointment_not_upcoming",
      );
    }
  });
});

describe("who may touch the queue", () => {
  it("only service keys with the reminders scope claim and report; only staff/admin watch", async () => {
    const unscoped = createHavenClient({
      url,
      token: (await makeServiceApiKey(h.deps, orgA, [])).key,
    });
    expect(await codeOf(unscoped.reminders.claimDue.mutate({ limit: 1, leaseSeconds: 5 }))).toBe(
      "FORBIDDEN",
    );
    const anon = createHavenClient({ url });
    expect(await codeOf(anon.reminders.claimDue.mutate({ limit: 1, leaseSeconds: 5 }))).toBe(
      "UNAUTHORIZED",
    );
    for (const actor of [staffA, clinicianA, patientUserA]) {
      expect(await codeOf(h.caller(actor).reminders.claimDue({ limit: 1, leaseSeconds: 5 }))).toBe(
        "FORBIDDEN",
      );
    }
    for (const actor of [clinicianA, patientUserA]) {
      expect(await codeOf(h.caller(actor).reminders.stats())).toBe("FORBIDDEN");
      expect(await codeOf(h.caller(actor).reminders.list({}))).toBe("FORBIDDEN");
    }
    expect(await codeOf(queueA.reminders.stats.query())).toBe("FORBIDDEN");
    expect(await codeOf(queueA.reminders.list.query({ status: "failed" }))).toBe("FORBIDDEN");
    const denials = await h.deps.db
      .select()
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.action, "access.denied"),
          eq(auditEvents.resourceId, "reminders.claimDue"),
        ),
      );
    expect(denials.length).toBeGreaterThanOrEqual(4);
  });

  it("validates claim input with field paths", async () => {
    try {
      await queueA.reminders.claimDue.mutate({ limit: 0, leaseSeconds: 99_999 });
      expect.unreachable();
    } catch (err) {
      expect(isHavenError(err) && err.data?.code).toBe("BAD_REQUEST");
      const paths = ((isHavenError(err) && err.data?.issues) || []).map((i) => i.path);
      expect(paths).toEqual(expect.arrayContaining(["limit", "leaseSeconds"]));
    }
  });
});
