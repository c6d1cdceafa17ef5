import { request } from "node:http";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient, type HavenClient } from "../../client-sdk/index.ts";
import { apiKeys, patients } from "../../db/schema/index.ts";
import {
  loginWithMfa,
  makeOrganization,
  makePatient,
  makePractitioner,
  makeServiceApiKey,
  makeUser,
} from "./factory.ts";
import { createHarness, type Harness } from "./harness.ts";

/**
 * Regression tests for the hostile inputs that used to get HTTP 500: NUL bytes
 * (SQLSTATE 22021), instants at the JS Date limits, crafted cursors, the TRACE method, and internal
 * exception text in 400 messages. Each goes over HTTP through the SDK (or raw fetch for what the SDK
 * cannot send) against a server on port 0; each answer must be a typed 4xx with no internal text.
 */
let h: Harness;
let url: string;
let staff: HavenClient;
let patient: HavenClient;
let clinician: HavenClient;
let service: HavenClient;
let admin: HavenClient;
let orgId: string;
let patientId: string;
let practitionerId: string;

const MAX = new Date(8.64e15); // +275760-09-13T00:00:00Z
const MIN = new Date(-8.64e15); // -271821-04-20T00:00:00Z
const INTERNAL =
  /Maximum call stack|deserialize|superjson|RangeError|TypeError|Invalid time value|SQLSTATE|params:|at \S+ \(/;

beforeAll(async () => {
  h = await createHarness();
  url = await h.listen();
  orgId = await makeOrganization(h.deps);
  patientId = (await makePatient(h.deps, orgId)).id;
  const s = await makeUser(h.deps, "staff", orgId);
  const p = await makeUser(h.deps, "patient", orgId);
  const c = await makeUser(h.deps, "clinician", orgId);
  const a = await makeUser(h.deps, "admin", orgId);
  practitionerId = await makePractitioner(h.deps, orgId, c.userId);
  await h.deps.db.update(patients).set({ userId: p.userId }).where(eq(patients.id, patientId));
  staff = createHavenClient({ url, token: await loginWithMfa(h, url, s) });
  patient = createHavenClient({ url, token: await loginWithMfa(h, url, p) });
  clinician = createHavenClient({ url, token: await loginWithMfa(h, url, c) });
  admin = createHavenClient({ url, token: await loginWithMfa(h, url, a) });
  service = createHavenClient({ url, token: (await makeServiceApiKey(h.deps, orgId)).key });
});
afterAll(async () => {
  await h?.close();
});

/** One raw HTTP request (for methods fetch will not send). */
function rawRequest(method: string, target: string): Promise<{ status: number; allow: string }> {
  return new Promise((resolve, reject) => {
    const req = request(target, { method }, (res) => {
      res.resume();
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, allow: String(res.headers.allow ?? "") }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

/** The status and message of a refused call; fails the test when the call succeeds. */
async function refusal(
  p: Promise<unknown>,
): Promise<{ status: number; message: string; reason: string | null }> {
  try {
    await p;
  } catch (err) {
    const e = err as { message: string; data?: { httpStatus?: number; reason?: string | null } };
    return { status: e.data?.httpStatus ?? 0, message: e.message, reason: e.data?.reason ?? null };
  }
  throw new Error("call unexpectedly succeeded");
}

function expectTyped400(r: { status: number; message: string }): void {
  expect(r.status).toBe(400);
  expect(r.message).not.toMatch(INTERNAL);
}

describe("NUL bytes in text (SQLSTATE 22021)", () => {
  it("auth.apiKeys.create name with NUL is 400 and stores nothing", async () => {
    const before = await h.deps.db.select({ id: apiKeys.id }).from(apiKeys);
    expectTyped400(
      await refusal(admin.auth.apiKeys.create.mutate({ name: "a\u0000b", scopes: ["reminders"] })),
    );
    expect(await h.deps.db.select({ id: apiKeys.id }).from(apiKeys)).toHaveLength(before.length);
  });
  it("reminders.complete providerMessageId with NUL is 400", async () => {
    expectTyped400(
      await refusal(
        service.reminders.complete.mutate({
          id: "0190a0a0-0000-7000-8000-000000000000",
          version: 1,
          outcome: "sent",
          providerMessageId: "<m\u0000@x>",
        }),
      ),
    );
  });
});

describe("instants at the JS Date limits", () => {
  for (const [label, d] of [
    ["max", MAX],
    ["min", MIN],
  ] as const) {
    it(`appointments.slots (patient) with ${label} is 400`, async () => {
      expectTyped400(
        await refusal(patient.appointments.slots.query({ practitionerId, from: d, to: MAX })),
      );
      expectTyped400(
        await refusal(
          patient.appointments.slots.query({
            practitionerId,
            from: new Date(d.getTime() - (label === "max" ? 86_400_000 : 0)),
            to: new Date(d.getTime() + (label === "min" ? 86_400_000 : 0)),
          }),
        ),
      );
    });
    it(`appointments.forPractitioner with ${label} is 400`, async () => {
      const from = label === "max" ? new Date(MAX.getTime() - 86_400_000) : MIN;
      expectTyped400(
        await refusal(
          clinician.appointments.forPractitioner.query({
            from,
            to: new Date(from.getTime() + 86_400_000),
          }),
        ),
      );
    });
    it(`audit.search with ${label} is 400`, async () => {
      expectTyped400(await refusal(admin.audit.search.query({ from: d })));
      expectTyped400(await refusal(admin.audit.search.query({ to: d })));
    });
    it(`appointments.book with override at ${label} is 400`, async () => {
      const startsAt = label === "max" ? new Date(MAX.getTime() - 3_600_000) : MIN;
      expectTyped400(
        await refusal(
          staff.appointments.book.mutate({
            practitionerId,
            patientId,
            startsAt,
            endsAt: new Date(startsAt.getTime() + 1_800_000),
            override: { reason: "fuzzing the limits" },
          }),
        ),
      );
    });
    it(`auth.apiKeys.create expiresAt ${label} is 400`, async () => {
      expectTyped400(
        await refusal(
          admin.auth.apiKeys.create.mutate({ name: "k", scopes: ["reminders"], expiresAt: d }),
        ),
      );
    });
  }
  it("appointments.day 9999-12-31 is 400", async () => {
    expectTyped400(
      await refusal(staff.appointments.day.query({ organizationId: orgId, date: "9999-12-31" })),
    );
  });
});

describe("crafted cursors", () => {
  const crafted = [
    Buffer.from(`+275760-09-13T00:00:00.000Z|0190a0a0-0000-7000-8000-000000000000`).toString(
      "base64url",
    ),
    Buffer.from(`-271821-04-20T00:00:00.000Z|0190a0a0-0000-7000-8000-000000000000`).toString(
      "base64url",
    ),
    Buffer.from(`2026-01-01T00:00:00.000Z|------------------------------------`).toString(
      "base64url",
    ),
  ];
  for (const cursor of crafted) {
    it(`audit.search and appointments.listForPatient refuse ${cursor.slice(0, 12)}… with 400`, async () => {
      const a = await refusal(admin.audit.search.query({ cursor }));
      expectTyped400(a);
      expect(a.reason).toBe("bad_cursor");
      const b = await refusal(staff.appointments.listForPatient.query({ patientId, cursor }));
      expectTyped400(b);
      expect(b.reason).toBe("bad_cursor");
    });
  }
});

describe("HTTP methods and internal text", () => {
  it("TRACE gets 405", async () => {
    // fetch refuses to send TRACE; node:http does not.
    for (const path of ["/trpc/auth.me", "/healthz", "/nowhere"]) {
      const res = await rawRequest("TRACE", `${url}${path}`);
      expect(res.status).toBe(405);
      expect(res.allow).toContain("POST");
    }
  });
  it("deeply nested superjson input gets a 400 without internal exception text", async () => {
    // Built as text: JSON.stringify itself overflows the stack on 20 000 levels.
    const body = `{"0":{"json":${'{"a":'.repeat(20_000)}1${"}".repeat(20_000)}}}`;
    const res = await fetch(`${url}/trpc/auth.login?batch=1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(await res.text()).not.toMatch(INTERNAL);
  });
  it("malformed superjson meta gets a 400 without internal exception text", async () => {
    const bodies = [
      { 0: { json: { a: 1 }, meta: { values: { a: ["class"] } } } },
      { 0: { json: { a: 1 }, meta: { values: { "a.b.c": ["Date"] } } } },
      { 0: { json: { email: "1" }, meta: { values: { email: ["bigint"] } } } },
      { 0: { json: { a: 1 }, meta: { referentialEqualities: { a: ["__proto__.x"] } } } },
      { 0: { json: { a: 1 }, meta: "nope" } },
      { 0: { json: { a: 1 }, meta: { values: { a: [["custom", "x"]] } } } },
      { 0: { json: { a: 1 }, meta: { values: { [`${"a.".repeat(5000)}a`]: ["Date"] } } } },
    ];
    for (const b of bodies) {
      const res = await fetch(`${url}/trpc/auth.login?batch=1`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(b),
      });
      expect(res.status, JSON.stringify(b)).toBeGreaterThanOrEqual(400);
      expect(res.status, JSON.stringify(b)).toBeLessThan(500);
      expect(await res.text()).not.toMatch(INTERNAL);
    }
  });
});
