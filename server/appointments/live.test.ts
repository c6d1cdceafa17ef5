import { max } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient, type HavenClient, isHavenError } from "../../client-sdk/index.ts";
import { type DatabaseHandle, openDatabase } from "../../db/client.ts";
import { appointmentChanges, auditEvents } from "../../db/schema/index.ts";
import { SessionManager } from "../auth/session.ts";
import type { AppServices } from "../context.ts";
import { PhiCrypto } from "../crypto/phi.ts";
import { buildServer } from "../http.ts";
import { appRouter } from "../router.ts";
import { testKeyring } from "../test/db.ts";
import {
  loginWithMfa,
  makeOrganization,
  makePatient,
  makePractitioner,
  makeUser,
} from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { type Clinic, makeClinic, setHours, WEEKDAYS } from "./fixtures.ts";
import { DEFAULT_SCHEDULING_SETTINGS } from "./settings.ts";

/**
 * `appointments.onChange` over real SSE (`httpSubscriptionLink` + a fetch-based EventSource):
 * two Haven servers on one Postgres, fan-out through LISTEN/NOTIFY, per-subscriber policy,
 * resumption with `lastEventId`, authentication by header or cookie, and the refusal cases
 * (an unauthenticated subscription is an HTTP 200 stream carrying an UNAUTHORIZED error event).
 * No sleeps: subscribers start from an explicit `lastEventId`, and "sees nothing" is proven by
 * ordering (the first event such a subscriber gets is a later change it IS allowed to see).
 */
let h: Harness;
let urlA: string;
let urlB: string;
let handleB: DatabaseHandle;
let appB: FastifyInstance;
let c: Clinic;
let otherClinic: Clinic;
let colleaguePractitioner: string;
let colleague: { email: string; password: string };
const NOW = new Date("2027-06-01T12:00:00Z");

beforeAll(async () => {
  h = await createHarness();
  h.clock.now = NOW;
  c = await makeClinic(h);
  otherClinic = await makeClinic(h, "Europe/Berlin");
  const colleagueUser = await makeUser(h.deps, "clinician", c.organizationId);
  colleague = colleagueUser;
  colleaguePractitioner = await makePractitioner(h.deps, c.organizationId, colleagueUser.userId);
  await setHours(
    h,
    c.organizationId,
    colleaguePractitioner,
    WEEKDAYS.map((weekday) => ({ weekday, start: "09:00", end: "12:00", slotMinutes: 30 })),
  );
  // No polling fallback within a test's lifetime: every delivery below must come from NOTIFY.
  h.services.scheduling = { ...DEFAULT_SCHEDULING_SETTINGS, feedPollMs: 3_600_000 };
  urlA = await h.listen();
  // Instance B: its own connection pool, LISTEN connection and session manager on the same database.
  handleB = await openDatabase({ url: h.testDb.url, maxConnections: 5 });
  const servicesB: AppServices = {
    ...h.services,
    deps: { ...h.deps, db: handleB.db },
    pubsub: handleB,
    sessions: new SessionManager(handleB.db, {
      ttlHours: 12,
      idleTimeoutMinutes: 15,
      secureCookies: false,
      now: h.deps.now,
    }),
  };
  appB = await buildServer({
    router: appRouter,
    services: servicesB,
    database: handleB,
    allowedOrigins: [],
  });
  await appB.listen({ host: "127.0.0.1", port: 0 });
  const addr = appB.server.address();
  if (!addr || typeof addr === "string") throw new Error("no address");
  urlB = `http://127.0.0.1:${addr.port}`;
}, 120_000);
afterAll(async () => {
  await appB?.close();
  await handleB?.close();
  await h?.close();
});

interface Received {
  id: string;
  kind: string;
  appointmentId: string;
  reason: string | null;
  patientFamily: string | null;
}

/** Subscribe and collect events; `next(n)` resolves once n events (or an error) arrived. */
function watch(
  client: HavenClient,
  input: Parameters<HavenClient["appointments"]["onChange"]["subscribe"]>[0],
) {
  const events: Received[] = [];
  let error: { code: string; reason: string | null; message: string } | null = null;
  let wake: () => void = () => {};
  const sub = client.appointments.onChange.subscribe(input, {
    onData(e) {
      events.push({
        id: e.id,
        kind: e.data.kind,
        appointmentId: e.data.appointment.id,
        reason: e.data.appointment.reason,
        patientFamily: e.data.appointment.patientName?.family ?? null,
      });
      wake();
    },
    onError(err) {
      error = {
        code: err.data?.code ?? "?",
        reason: (err.data as { reason?: string | null } | undefined)?.reason ?? null,
        message: err.message,
      };
      wake();
    },
  });
  return {
    events,
    get error() {
      return error;
    },
    async next(n: number): Promise<Received[]> {
      while (events.length < n && !error) await new Promise<void>((r) => (wake = r));
      if (events.length < n) throw new Error(`subscription failed: ${JSON.stringify(error)}`);
      return events.slice(0, n);
    },
    async failure() {
      while (!error) await new Promise<void>((r) => (wake = r));
      return error as { code: string; reason: string | null; message: string };
    },
    stop: () => sub.unsubscribe(),
  };
}

async function latest(): Promise<string> {
  const [row] = await h.deps.db
    .select({ seq: max(appointmentChanges.seq) })
    .from(appointmentChanges);
  return String(row?.seq ?? 0);
}

const client = async (url: string, user: { email: string; password: string }) =>
  createHavenClient({ url, token: await loginWithMfa(h, url, user) });

describe("fan-out across two instances", () => {
  it("a subscriber on A sees a booking made through B; subscribers without access see nothing", async () => {
    const since = await latest();
    const staffOnA = watch(await client(urlA, c.staff), { lastEventId: since });
    const clinicianOnA = watch(await client(urlA, c.clinician), { lastEventId: since });
    const colleagueOnA = watch(await client(urlA, colleague), { lastEventId: since });
    const otherOrgOnA = watch(await client(urlA, otherClinic.staff), { lastEventId: since });

    const staffOnB = await client(urlB, c.staff);
    const patient = await makePatient(h.deps, c.organizationId);
    const booked = await staffOnB.appointments.book.mutate({
      practitionerId: c.practitionerId,
      patientId: patient.id,
      startsAt: new Date("2027-06-07T13:00:00Z"),
      reason: "annual physical",
    });

    const [seen] = await staffOnA.next(1);
    expect(seen).toMatchObject({
      kind: "booked",
      appointmentId: booked.id,
      reason: "annual physical",
      patientFamily: patient.demographics.name.family,
    });
    const [own] = await clinicianOnA.next(1);
    expect(own?.appointmentId).toBe(booked.id);

    // Later changes the other two may see arrive first: so they never got the booking above.
    const colleaguePatient = await makePatient(h.deps, c.organizationId);
    const colleagueVisit = await staffOnB.appointments.book.mutate({
      practitionerId: colleaguePractitioner,
      patientId: colleaguePatient.id,
      startsAt: new Date("2027-06-07T13:00:00Z"),
    });
    const [colleagueFirst] = await colleagueOnA.next(1);
    expect(colleagueFirst?.appointmentId).toBe(colleagueVisit.id);

    const berlinStaff = await client(urlB, otherClinic.staff);
    const berlinPatient = await makePatient(h.deps, otherClinic.organizationId);
    const berlinVisit = await berlinStaff.appointments.book.mutate({
      practitionerId: otherClinic.practitionerId,
      patientId: berlinPatient.id,
      startsAt: new Date("2027-06-07T07:00:00Z"), // 09:00 CEST
    });
    const [otherFirst] = await otherOrgOnA.next(1);
    expect(otherFirst?.appointmentId).toBe(berlinVisit.id);

    // Staff of the first clinic saw both of its bookings, in commit order, and not Berlin's.
    const both = await staffOnA.next(2);
    expect(both.map((e) => e.appointmentId)).toEqual([booked.id, colleagueVisit.id]);
    expect(Number(both[1]?.id)).toBeGreaterThan(Number(both[0]?.id));

    // Each delivery was audited as a read by the subscriber.
    const reads = await h.deps.db.select().from(auditEvents);
    const delivered = reads.filter(
      (r) =>
        r.action === "appointment.read" && r.resourceId === booked.id && r.outcome === "allowed",
    );
    expect(delivered.map((r) => r.actorUserId).sort()).toEqual(
      [c.clinician.userId, c.staff.userId].sort(),
    );

    for (const s of [staffOnA, clinicianOnA, colleagueOnA, otherOrgOnA]) s.stop();
    expect(staffOnA.events.map((e) => e.appointmentId)).not.toContain(berlinVisit.id);
  }, 60_000);

  it("status changes stream too, and a client resumes after lastEventId without losing any", async () => {
    const staff = await client(urlA, c.staff);
    const patient = await makePatient(h.deps, c.organizationId);
    const since = await latest();
    const first = watch(staff, { lastEventId: since });
    const visit = await staff.appointments.book.mutate({
      practitionerId: c.practitionerId,
      patientId: patient.id,
      startsAt: new Date("2027-06-08T13:00:00Z"),
    });
    const [e1] = await first.next(1);
    first.stop();
    // While nobody listens: two more changes through the other instance.
    const staffB = await client(urlB, c.staff);
    const moved = await staffB.appointments.reschedule.mutate({
      appointmentId: visit.id,
      version: 1,
      startsAt: new Date("2027-06-08T14:00:00Z"),
    });
    await staffB.appointments.cancel.mutate({
      appointmentId: visit.id,
      version: moved.version,
      reason: "moved away",
    });
    const resumed = watch(staff, { lastEventId: e1?.id ?? "" });
    const got = await resumed.next(2);
    expect(got.map((e) => e.kind)).toEqual(["rescheduled", "cancelled"]);
    expect(got.every((e) => e.appointmentId === visit.id)).toBe(true);
    resumed.stop();
  }, 60_000);

  it("a session cookie authenticates the stream too (no token in the URL)", async () => {
    const token = await loginWithMfa(h, urlA, c.staff);
    const cookieClient = createHavenClient({
      url: urlA,
      fetch: ((u: string | URL | Request, init?: RequestInit) => {
        const headers = new Headers(init?.headers);
        headers.set("cookie", `haven_session=${token}`);
        if (String(u).includes("onChange")) expect(String(u)).not.toContain(token);
        return fetch(u, { ...init, headers });
      }) as typeof fetch,
    });
    const since = await latest();
    const s = watch(cookieClient, { lastEventId: since });
    const staff = await client(urlB, c.staff);
    const patient = await makePatient(h.deps, c.organizationId);
    const v = await staff.appointments.book.mutate({
      practitionerId: c.practitionerId,
      patientId: patient.id,
      startsAt: new Date("2027-06-09T13:00:00Z"),
    });
    const [e] = await s.next(1);
    expect(e?.appointmentId).toBe(v.id);
    s.stop();
  }, 60_000);
});

describe("refusals", () => {
  it("an unauthenticated subscription answers HTTP 200 with an UNAUTHORIZED error event", async () => {
    const input = encodeURIComponent(JSON.stringify({ json: {} }));
    const res = await fetch(`${urlA}/trpc/appointments.onChange?input=${input}`, {
      headers: { accept: "text/event-stream" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const reader = res.body?.getReader();
    if (!reader) throw new Error("no body");
    let text = "";
    while (!text.includes("serialized-error")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await reader.cancel();
    expect(text).toMatch(/event: serialized-error/);
    expect(text).toMatch(/UNAUTHORIZED/);

    const viaSdk = watch(createHavenClient({ url: urlA }), {});
    expect(await viaSdk.failure()).toMatchObject({ code: "UNAUTHORIZED" });
  });

  it("patients may not subscribe; clinicians only to their own calendar; staff only to their organization", async () => {
    const patientClient = createHavenClient({
      url: urlA,
      token: await loginWithMfa(h, urlA, c.patient.user),
    });
    expect(await watch(patientClient, {}).failure()).toMatchObject({ code: "FORBIDDEN" });
    const colleagueClient = await client(urlA, colleague);
    expect(
      await watch(colleagueClient, { practitionerId: c.practitionerId }).failure(),
    ).toMatchObject({ code: "FORBIDDEN", reason: "not_own_calendar" });
    const berlin = await client(urlA, otherClinic.staff);
    expect(await watch(berlin, { organizationId: c.organizationId }).failure()).toMatchObject({
      code: "FORBIDDEN",
      reason: "other_organization",
    });
    const denied = await h.deps.db.select().from(auditEvents);
    expect(
      denied.filter((d) => d.action === "appointment.subscribe" && d.outcome === "denied").length,
    ).toBeGreaterThanOrEqual(2);
  });

  it("signing out ends a live stream at the next change with UNAUTHORIZED", async () => {
    const token = await loginWithMfa(h, urlA, c.staff);
    const staff = createHavenClient({ url: urlA, token });
    const since = await latest();
    const s = watch(staff, { lastEventId: since });
    const other = await client(urlB, c.staff);
    const p1 = await makePatient(h.deps, c.organizationId);
    await other.appointments.book.mutate({
      practitionerId: c.practitionerId,
      patientId: p1.id,
      startsAt: new Date("2027-06-10T13:00:00Z"),
    });
    await s.next(1);
    await staff.auth.logout.mutate();
    const p2 = await makePatient(h.deps, c.organizationId);
    await other.appointments.book.mutate({
      practitionerId: c.practitionerId,
      patientId: p2.id,
      startsAt: new Date("2027-06-10T14:00:00Z"),
    });
    expect(await s.failure()).toMatchObject({ code: "UNAUTHORIZED" });
    expect(s.events).toHaveLength(1);
  }, 60_000);
});

describe("embedded PGlite (single instance)", () => {
  let pg: DatabaseHandle;
  let app: FastifyInstance;
  let url: string;
  let services: AppServices;

  beforeAll(async () => {
    pg = await openDatabase({ pgliteDir: "memory://" });
    await pg.migrate();
    const deps = { db: pg.db, crypto: new PhiCrypto(testKeyring()), now: () => new Date(NOW) };
    services = {
      ...h.services,
      deps,
      pubsub: pg,
      scheduling: { ...DEFAULT_SCHEDULING_SETTINGS, feedPollMs: 3_600_000 },
      sessions: new SessionManager(pg.db, {
        ttlHours: 12,
        idleTimeoutMinutes: 15,
        secureCookies: false,
        now: deps.now,
      }),
    };
    app = await buildServer({ router: appRouter, services, database: pg, allowedOrigins: [] });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const addr = app.server.address();
    if (!addr || typeof addr === "string") throw new Error("no address");
    url = `http://127.0.0.1:${addr.port}`;
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await pg?.close();
  });

  it("books, notifies and streams on PGlite too", async () => {
    const org = await makeOrganization(services.deps);
    const staffUser = await makeUser(services.deps, "staff", org);
    const practitionerId = await makePractitioner(services.deps, org);
    const patient = await makePatient(services.deps, org);
    const token = await loginWithMfa({ services }, url, staffUser);
    const staff = createHavenClient({ url, token });
    const s = watch(staff, { lastEventId: "0" });
    const visit = await staff.appointments.book.mutate({
      practitionerId,
      patientId: patient.id,
      startsAt: new Date("2027-06-07T13:00:00Z"),
      endsAt: new Date("2027-06-07T13:30:00Z"),
      override: { reason: "no hours configured yet" },
    });
    const [e] = await s.next(1);
    expect(e).toMatchObject({ kind: "booked", appointmentId: visit.id });
    // the exclusion constraint holds on PGlite as well
    const other = await makePatient(services.deps, org);
    try {
      await staff.appointments.book.mutate({
        practitionerId,
        patientId: other.id,
        startsAt: new Date("2027-06-07T13:15:00Z"),
        endsAt: new Date("2027-06-07T13:45:00Z"),
        override: { reason: "overlap" },
      });
      expect.unreachable();
    } catch (err) {
      expect(isHavenError(err) && err.data?.code).toBe("CONFLICT");
    }
    s.stop();
  }, 60_000);
});
