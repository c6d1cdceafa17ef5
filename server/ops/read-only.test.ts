import { and, eq } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient, isHavenError } from "../../client-sdk/index.ts";
import { appointments, auditEvents } from "../../db/schema/index.ts";
import type { Meta } from "../api-boundary.ts";
import { type Clinic, makeClinic } from "../appointments/fixtures.ts";
import { loadConfig } from "../config.ts";
import { createContextInner } from "../context.ts";
import { buildServer } from "../http.ts";
import { appRouter } from "../router.ts";
import { loginWithMfa } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { createCallerFactory } from "../trpc.ts";

/**
 * Read-only emergency mode (issue 15 §1, 45 CFR 164.308(a)(7)(ii)(C); ADR 0013): with
 * `readOnly` on, staff still sign in and read records (and every read is audited), while every
 * mutation that does not declare `readOnlyMode: "allowed"` answers 503 SERVICE_UNAVAILABLE
 * `read_only` with `Retry-After` and changes nothing. /readyz stays ready and reports the mode.
 */
let h: Harness;
let clinic: Clinic;
const servers: FastifyInstance[] = [];

async function start(readOnly: boolean): Promise<string> {
  const app = await buildServer({
    router: appRouter,
    services: { ...h.services, readOnly },
    database: h.testDb.handle,
    allowedOrigins: [],
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  servers.push(app);
  const addr = app.server.address();
  return `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
}

beforeAll(async () => {
  h = await createHarness();
  clinic = await makeClinic(h);
});
afterAll(async () => {
  for (const s of servers) await s.close();
  await h?.close();
});

/** The next open slot of the clinic's practitioner, as a read-write server offers it. */
async function nextSlot(url: string, token: string): Promise<Date> {
  const from = new Date(Date.now() + 2 * 86_400_000);
  const { slots } = await createHavenClient({ url, token }).appointments.slots.query({
    practitionerId: clinic.practitionerId,
    from,
    to: new Date(from.getTime() + 14 * 86_400_000),
  });
  const slot = slots[0];
  if (!slot) throw new Error("no open slot");
  return slot.startsAt;
}

describe("read-only emergency mode over HTTP", () => {
  it("signs staff in, serves and audits a record read, refuses a booking with 503 + Retry-After", async () => {
    const url = await start(true);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready", mode: "read-only" });

    // Sign-in (password, then MFA) still works: reading needs a session.
    const token = await loginWithMfa(h, url, clinic.staff);
    let lastStatus = 0;
    let retryAfter: string | null = null;
    const sdk = createHavenClient({
      url,
      token,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        lastStatus = res.status;
        retryAfter = res.headers.get("retry-after");
        return res;
      },
    });

    const readsBefore = await h.deps.db
      .select({ id: auditEvents.id })
      .from(auditEvents)
      .where(
        and(eq(auditEvents.action, "patient.read"), eq(auditEvents.patientId, clinic.patient.id)),
      );
    const record = await sdk.patients.get.query({ patientId: clinic.patient.id });
    expect(record.id).toBe(clinic.patient.id);
    const readsAfter = await h.deps.db
      .select({ id: auditEvents.id, outcome: auditEvents.outcome })
      .from(auditEvents)
      .where(
        and(eq(auditEvents.action, "patient.read"), eq(auditEvents.patientId, clinic.patient.id)),
      );
    expect(readsAfter.length).toBe(readsBefore.length + 1);

    const startsAt = await nextSlot(url, token);
    const attempt = await sdk.appointments.book
      .mutate({
        practitionerId: clinic.practitionerId,
        patientId: clinic.patient.id,
        startsAt,
        reason: "during the outage",
      })
      .then(
        () => null,
        (err: unknown) => err,
      );
    expect(isHavenError(attempt)).toBe(true);
    if (!isHavenError(attempt)) return;
    expect(attempt.data?.code).toBe("SERVICE_UNAVAILABLE");
    expect(attempt.data?.reason).toBe("read_only");
    expect(attempt.data?.retryAfterSeconds).toBe(60);
    expect(lastStatus).toBe(503);
    expect(retryAfter).toBe("60");
    const booked = await h.deps.db
      .select({ id: appointments.id })
      .from(appointments)
      .where(eq(appointments.patientId, clinic.patient.id));
    expect(booked).toEqual([]);

    // The same booking on a read-write server succeeds: the refusal was the mode, not the input.
    const rw = await start(false);
    const rwToken = await loginWithMfa(h, rw, clinic.staff);
    const made = await createHavenClient({ url: rw, token: rwToken }).appointments.book.mutate({
      practitionerId: clinic.practitionerId,
      patientId: clinic.patient.id,
      startsAt,
      reason: "after the outage",
    });
    expect(made.patientId).toBe(clinic.patient.id);
    expect(((await (await fetch(`${rw}/readyz`)).json()) as { mode: string }).mode).toBe(
      "read-write",
    );
  });
});

describe("deny by default", () => {
  const procedures = Object.entries(
    appRouter._def.procedures as unknown as Record<string, { _def: { type: string; meta?: Meta } }>,
  ).filter(([, p]) => p._def.type === "mutation");
  const refused = procedures.filter(([, p]) => p._def.meta?.readOnlyMode !== "allowed");
  const allowed = procedures.filter(([, p]) => p._def.meta?.readOnlyMode === "allowed");

  it("allows exactly the sign-in, session, MFA-verify, break-glass and audit-verify writes", () => {
    expect(allowed.map(([path]) => path).sort()).toEqual([
      "access.breakGlass",
      "access.revoke",
      "audit.verify",
      "auth.apiKeys.revoke",
      "auth.login",
      "auth.logout",
      "auth.logoutEverywhere",
      "auth.mfa.verify",
      "auth.sessions.revoke",
      "auth.users.setDisabled",
    ]);
    expect(refused.length).toBeGreaterThan(20);
  });

  it("refuses every other mutation before access checks or input parsing", async () => {
    const caller = createCallerFactory(appRouter)(
      createContextInner({ ...h.services, readOnly: true }, {}),
    ) as unknown as Record<string, unknown>;
    for (const [path] of refused) {
      const fn = path
        .split(".")
        .reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], caller) as (
        input: unknown,
      ) => Promise<unknown>;
      const err = await fn({}).then(
        () => null,
        (e: unknown) => e as { code?: string; cause?: { reason?: string } },
      );
      expect({ path, code: err?.code, reason: err?.cause?.reason }).toEqual({
        path,
        code: "SERVICE_UNAVAILABLE",
        reason: "read_only",
      });
    }
  });

  it("an allowed mutation still runs its own checks (login with a wrong password is refused as usual)", async () => {
    const caller = createCallerFactory(appRouter)(
      createContextInner({ ...h.services, readOnly: true }, {}),
    );
    const err = await caller.auth
      .login({ email: clinic.staff.email, password: "not the password at all" })
      .then(
        () => null,
        (e: unknown) => e as { code?: string },
      );
    expect(err?.code).toBe("UNAUTHORIZED");
  });
});

describe("HAVEN_READ_ONLY", () => {
  it("is off by default", () => {
    expect(loadConfig({}).HAVEN_READ_ONLY).toBe(false);
    expect(loadConfig({ HAVEN_READ_ONLY: "true" }).HAVEN_READ_ONLY).toBe(true);
  });
});
