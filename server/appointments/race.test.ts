import { and, eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient, type HavenClient, isHavenError } from "../../client-sdk/index.ts";
import { appointments, auditEvents, reminders } from "../../db/schema/index.ts";
import { loginWithMfa, makePatient } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { type Clinic, makeClinic, makePortalPatient } from "./fixtures.ts";

/**
 * The double-booking guarantee under real concurrency: 50 simultaneous requests from 50 separate
 * HTTP clients against a real server and Postgres (pool of 55, so the transactions really run at
 * the same time). The exclusion constraint `appointments_no_overlap` is the last line: exactly one
 * request wins, the other 49 get CONFLICT (`slot_taken`), never a 500, and nothing they wrote
 * (appointment, reminders, change log, audit "allowed") survives.
 */
let h: Harness;
let url: string;
let c: Clinic;
const NOW = new Date("2027-06-01T12:00:00Z");
const RACERS = 50;

beforeAll(async () => {
  h = await createHarness({ maxConnections: 55 });
  h.clock.now = NOW;
  c = await makeClinic(h);
  url = await h.listen();
}, 120_000);
afterAll(async () => {
  await h?.close();
});

type Outcome = { ok: true; id: string } | { ok: false; code: string; reason: string | null };

async function settle(p: Promise<{ id: string }>): Promise<Outcome> {
  try {
    return { ok: true, id: (await p).id };
  } catch (err) {
    if (isHavenError(err)) {
      return { ok: false, code: err.data?.code ?? "?", reason: err.data?.reason ?? null };
    }
    throw err;
  }
}

/** Start every call at once (after all clients exist), then wait for all. */
async function race(calls: (() => Promise<{ id: string }>)[]): Promise<Outcome[]> {
  let go!: () => void;
  const gate = new Promise<void>((r) => {
    go = r;
  });
  const running = calls.map(async (call) => {
    await gate;
    return settle(call());
  });
  go();
  return Promise.all(running);
}

async function staffClients(n: number): Promise<HavenClient[]> {
  const tokens: string[] = [];
  for (let i = 0; i < 5; i++) tokens.push(await loginWithMfa(h, url, c.staff));
  return Array.from({ length: n }, (_, i) =>
    createHavenClient({ url, token: tokens[i % tokens.length] }),
  );
}

describe(`${RACERS} concurrent conflicting requests → exactly one wins`, () => {
  it("book: 10 patients for themselves + 40 staff requests, all overlapping Monday 09:15–09:30", async () => {
    const mondayNine = new Date("2027-06-07T13:00:00Z"); // 09:00 EDT
    const patientClients: HavenClient[] = [];
    for (let i = 0; i < 10; i++) {
      const p = await makePortalPatient(h, c.organizationId);
      patientClients.push(createHavenClient({ url, token: await loginWithMfa(h, url, p.user) }));
    }
    const staff = await staffClients(40);
    const others = await Promise.all(staff.map(() => makePatient(h.deps, c.organizationId)));
    const calls = [
      ...patientClients.map(
        (client) => () =>
          client.appointments.book.mutate({
            practitionerId: c.practitionerId,
            startsAt: mondayNine,
          }),
      ),
      ...staff.map((client, i) => () => {
        const patientId = others[i]?.id ?? "";
        if (i < 20) {
          return client.appointments.book.mutate({
            practitionerId: c.practitionerId,
            patientId,
            startsAt: mondayNine,
          });
        }
        // Overrides at 09:05+j … 09:35+j: all contain 09:14–09:30, so every pair overlaps.
        const start = new Date(mondayNine.getTime() + (5 + (i % 10)) * 60_000);
        return client.appointments.book.mutate({
          practitionerId: c.practitionerId,
          patientId,
          startsAt: start,
          endsAt: new Date(start.getTime() + 30 * 60_000),
          override: { reason: "race" },
        });
      }),
    ];
    expect(calls).toHaveLength(RACERS);
    const outcomes = await race(calls);

    const winners = outcomes.filter((o) => o.ok);
    const losers = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(RACERS - 1);
    expect(new Set(losers.map((l) => `${l.code}:${l.reason}`))).toEqual(
      new Set(["CONFLICT:slot_taken"]),
    );

    const rows = await h.deps.db
      .select()
      .from(appointments)
      .where(eq(appointments.practitionerId, c.practitionerId));
    expect(rows).toHaveLength(1);
    const winner = winners[0] as { id: string };
    expect(rows[0]?.id).toBe(winner.id);
    const rems = await h.deps.db.select().from(reminders);
    expect(rems.every((r) => r.appointmentId === winner.id)).toBe(true);
    expect(rems).toHaveLength(2);
    const audit = await h.deps.db
      .select({ outcome: auditEvents.outcome })
      .from(auditEvents)
      .where(eq(auditEvents.action, "appointment.book"));
    expect(audit.filter((a) => a.outcome === "allowed")).toHaveLength(1);
    expect(audit.filter((a) => a.outcome === "error")).toHaveLength(RACERS - 1);
    expect(h.logs.text()).not.toMatch(/"procedure failed"/);
  }, 120_000);

  it("reschedule: 50 different visits moved into the same Wednesday 09:00 slot", async () => {
    const staff = await staffClients(RACERS);
    const setup = createHavenClient({ url, token: await loginWithMfa(h, url, c.staff) });
    const visits: { id: string; startsAt: Date }[] = [];
    for (let i = 0; i < RACERS; i++) {
      const p = await makePatient(h.deps, c.organizationId);
      // Distinct half-hours on Thursday/Friday nights (outside hours, so booked with an override).
      const startsAt = new Date(Date.UTC(2027, 5, 10, 0, 0) + i * 30 * 60_000);
      const v = await setup.appointments.book.mutate({
        practitionerId: c.practitionerId,
        patientId: p.id,
        startsAt,
        endsAt: new Date(startsAt.getTime() + 30 * 60_000),
        override: { reason: "setup" },
      });
      visits.push({ id: v.id, startsAt });
    }
    const target = new Date("2027-06-09T13:00:00Z"); // Wednesday 09:00 EDT, a real slot
    const outcomes = await race(
      visits.map(
        (v, i) => () =>
          (staff[i] as HavenClient).appointments.reschedule.mutate({
            appointmentId: v.id,
            version: 1,
            startsAt: target,
          }),
      ),
    );
    const winners = outcomes.filter((o) => o.ok);
    const losers = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(RACERS - 1);
    expect(new Set(losers.map((l) => `${l.code}:${l.reason}`))).toEqual(
      new Set(["CONFLICT:slot_taken"]),
    );

    const inSlot = await h.deps.db
      .select()
      .from(appointments)
      .where(
        and(eq(appointments.practitionerId, c.practitionerId), eq(appointments.startsAt, target)),
      );
    expect(inSlot.map((r) => r.id)).toEqual([(winners[0] as { id: string }).id]);
    // The losers are untouched: original time, version 1, reminders still due for the old time.
    const loserIds = visits.map((v) => v.id).filter((id) => id !== inSlot[0]?.id);
    const untouched = await h.deps.db
      .select()
      .from(appointments)
      .where(inArray(appointments.id, loserIds));
    expect(untouched.every((r) => r.version === 1)).toBe(true);
    const original = new Map(visits.map((v) => [v.id, v.startsAt.getTime()]));
    expect(untouched.every((r) => r.startsAt.getTime() === original.get(r.id))).toBe(true);
    const loserReminders = await h.deps.db
      .select()
      .from(reminders)
      .where(inArray(reminders.appointmentId, loserIds));
    expect(loserReminders).toHaveLength(loserIds.length * 2);
    expect(loserReminders.every((r) => r.version === 1)).toBe(true);
  }, 120_000);

  it("stale versions race too: two clients with version 1 of one visit → one wins, one CONFLICT stale_version", async () => {
    const [a, b] = await staffClients(2);
    const p = await makePatient(h.deps, c.organizationId);
    const v = await (a as HavenClient).appointments.book.mutate({
      practitionerId: c.practitionerId,
      patientId: p.id,
      startsAt: new Date("2027-06-11T13:00:00Z"),
    });
    const outcomes = await race([
      () =>
        (a as HavenClient).appointments.reschedule.mutate({
          appointmentId: v.id,
          version: 1,
          startsAt: new Date("2027-06-11T14:00:00Z"),
        }),
      () =>
        (b as HavenClient).appointments.cancel.mutate({
          appointmentId: v.id,
          version: 1,
          reason: "race",
        }),
    ]);
    expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
    expect(outcomes.find((o) => !o.ok)).toMatchObject({
      code: "CONFLICT",
      reason: "stale_version",
    });
    const [row] = await h.deps.db.select().from(appointments).where(eq(appointments.id, v.id));
    expect(row?.version).toBe(2);
  }, 60_000);

  it("overlapping staff overrides (24 at once, 30-min visits every 5 min, 5 rounds): never a 500, no overlap, every refusal audited", async () => {
    const staff = await staffClients(24);
    const patients = await Promise.all(staff.map(() => makePatient(h.deps, c.organizationId)));
    const codes = new Set<string>();
    let won = 0;
    let lost = 0;
    for (let round = 0; round < 5; round++) {
      // Tuesday 2027-06-15 + round days, from 07:00 UTC: outside hours, so booked by override.
      const base = Date.UTC(2027, 5, 15 + round, 7, 0);
      const outcomes = await race(
        staff.map((client, i) => () => {
          const startsAt = new Date(base + i * 5 * 60_000);
          return client.appointments.book.mutate({
            practitionerId: c.practitionerId,
            patientId: patients[i]?.id ?? "",
            startsAt,
            endsAt: new Date(startsAt.getTime() + 30 * 60_000),
            override: { reason: "deadlock regression" },
          });
        }),
      );
      for (const o of outcomes) {
        if (o.ok) won++;
        else {
          lost++;
          codes.add(`${o.code}:${o.reason}`);
        }
      }
      // The winners of the round never overlap one another.
      const rows = await h.deps.db
        .select({ startsAt: appointments.startsAt, endsAt: appointments.endsAt })
        .from(appointments)
        .where(
          inArray(
            appointments.id,
            outcomes.flatMap((o) => (o.ok ? [o.id] : [])),
          ),
        );
      const sorted = rows.sort((x, y) => x.startsAt.getTime() - y.startsAt.getTime());
      for (let k = 1; k < sorted.length; k++) {
        expect(sorted[k]?.startsAt.getTime()).toBeGreaterThanOrEqual(
          sorted[k - 1]?.endsAt.getTime() ?? 0,
        );
      }
    }
    expect(won + lost).toBe(120);
    expect(won).toBeGreaterThan(0);
    expect(lost).toBeGreaterThan(0);
    // Every loser is told the slot is taken, in words a caller can act on; nothing else.
    expect(codes).toEqual(new Set(["CONFLICT:slot_taken"]));
    const refusals = await h.deps.db
      .select({ details: auditEvents.details })
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "appointment.book"), eq(auditEvents.outcome, "error")));
    expect(
      refusals.filter((r) => (r.details as { rule?: string } | null)?.rule === "slot_taken").length,
    ).toBeGreaterThanOrEqual(lost);
    expect(h.logs.text()).not.toMatch(/"procedure failed"/);
  }, 180_000);
});
