import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { patients, sessions } from "../db/schema/index.ts";
import {
  linkCare,
  makeOrganization,
  makePatient,
  makePractitioner,
  makeUser,
} from "../server/test/factory.ts";
import { createHarness, type Harness } from "../server/test/harness.ts";
import { createHavenClient, isHavenError, type RouterOutputs } from "./index.ts";

/** The typed client against a real server on port 0 and a real Postgres. */
let h: Harness;
let url: string;
let patient: Awaited<ReturnType<typeof makePatient>>;
let patientUser: Awaited<ReturnType<typeof makeUser>>;
let clinician: Awaited<ReturnType<typeof makeUser>>;

beforeAll(async () => {
  h = await createHarness();
  const org = await makeOrganization(h.deps);
  patient = await makePatient(h.deps, org);
  patientUser = await makeUser(h.deps, "patient", org);
  await h.deps.db
    .update(patients)
    .set({ userId: patientUser.userId })
    .where(eq(patients.id, patient.id));
  clinician = await makeUser(h.deps, "clinician", org);
  await linkCare(h.deps, org, patient.id, await makePractitioner(h.deps, org, clinician.userId));
  url = await h.listen();
});
afterAll(async () => {
  await h?.close();
});

async function errorOf(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    if (isHavenError(err)) return err;
    throw err;
  }
  throw new Error("expected an error");
}

describe("client-sdk over HTTP", () => {
  it("logs in with a bearer token, reads own record, logs out; the token is then refused", async () => {
    const anon = createHavenClient({ url });
    const login = await anon.auth.login.mutate({
      email: patientUser.email,
      password: patientUser.password,
    });
    expect(login.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(login.expiresAt).toBeInstanceOf(Date);

    const me = createHavenClient({ url, token: login.token });
    const who = await me.auth.me.query();
    expect(who.user).toMatchObject({
      id: patientUser.userId,
      role: "patient",
      patientId: patient.id,
    });

    const record: RouterOutputs["patients"]["get"] = await me.patients.get.query({
      patientId: patient.id,
    });
    expect(record.demographics.name.family).toBe(patient.demographics.name.family);
    expect(record.demographics.ssn).toBe(patient.demographics.ssn);

    await me.auth.logout.mutate();
    const err = await errorOf(me.patients.get.query({ patientId: patient.id }));
    expect(err.data?.code).toBe("UNAUTHORIZED");
  });

  it("stores only the SHA-256 of the token, never the token", async () => {
    const anon = createHavenClient({ url });
    const { token } = await anon.auth.login.mutate({
      email: clinician.email,
      password: clinician.password,
    });
    const rows = await h.deps.db.select({ id: sessions.id }).from(sessions);
    expect(rows.some((r) => r.id === token)).toBe(false);
    const { createHash } = await import("node:crypto");
    expect(rows.some((r) => r.id === createHash("sha256").update(token).digest("hex"))).toBe(true);
  });

  it("sets an HttpOnly SameSite=Lax session cookie that authenticates queries", async () => {
    const res = await fetch(`${url}/trpc/auth.login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ json: { email: clinician.email, password: clinician.password } }),
    });
    expect(res.status).toBe(200);
    const cookie = res.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^haven_session=[A-Za-z0-9_-]{43};/);
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
    const token = cookie.split(";")[0] ?? "";
    const me = await fetch(`${url}/trpc/auth.me`, { headers: { cookie: token } });
    expect(me.status).toBe(200);
    expect(
      ((await me.json()) as { result: { data: { json: { user: { role: string } } } } }).result.data
        .json.user.role,
    ).toBe("clinician");
  });

  it("refuses a cookie-authenticated mutation from another origin (CSRF)", async () => {
    const login = await createHavenClient({ url }).auth.login.mutate({
      email: clinician.email,
      password: clinician.password,
    });
    const res = await fetch(`${url}/trpc/auth.logout`, {
      method: "POST",
      headers: {
        cookie: `haven_session=${login.token}`,
        origin: "https://evil.example",
        "content-type": "application/json",
      },
      body: "{}",
    });
    expect(res.status).toBe(403);
    // the session survived
    const me = await createHavenClient({ url, token: login.token }).auth.me.query();
    expect(me.user.id).toBe(clinician.userId);
  });

  it("a wrong password and an unknown e-mail get the same UNAUTHORIZED message", async () => {
    const anon = createHavenClient({ url });
    const a = await errorOf(
      anon.auth.login.mutate({ email: clinician.email, password: "wrong password here" }),
    );
    const b = await errorOf(
      anon.auth.login.mutate({ email: "nobody@haven.test", password: "wrong password here" }),
    );
    expect(a.data?.code).toBe("UNAUTHORIZED");
    expect(b.data?.code).toBe("UNAUTHORIZED");
    expect(a.message).toBe(b.message);
  });

  it("errors carry a request id and never a stack", async () => {
    const anon = createHavenClient({ url });
    const err = await errorOf(anon.patients.get.query({ patientId: patient.id }));
    expect(err.data?.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.stringify(err.shape)).not.toMatch(/stack|at .*\.ts:/);
  });

  it("serves /healthz and /readyz", async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready", mode: "read-write" });
  });
});
