import { createConfig, lintFromString } from "@redocly/openapi-core";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents } from "../../db/schema/index.ts";
import { type Clinic, makeClinic } from "../appointments/fixtures.ts";
import { enrolTotpDirectly, totpCode } from "../mfa/service.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { REST_OPERATIONS } from "./operations.ts";

/**
 * The OpenAPI door (issue 11, ADR 0010): the document lints clean with Redocly's recommended
 * rules, and the REST subset really goes through the procedures (MFA, roles, audit, CSRF rule,
 * typed error shape) over HTTP against Postgres.
 */
let h: Harness;
let c: Clinic;
let url: string;
let secret: string;

beforeAll(async () => {
  h = await createHarness();
  c = await makeClinic(h);
  secret = await enrolTotpDirectly(h.deps, c.staff.userId);
  url = await h.listen();
});
afterAll(async () => {
  await h?.close();
});

async function call(
  method: "GET" | "POST",
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const res = await fetch(`${url}/api/v1${path}`, {
    method,
    headers: {
      ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : null };
}

let signIns = 0;
/** Staff sign-in + real TOTP over REST; each call moves the clock a TOTP step on (replay guard). */
async function staffToken(): Promise<string> {
  h.clock.now = new Date(Date.now() + signIns++ * 60_000);
  const login = await call("POST", "/auth/sign-in", {
    body: { email: c.staff.email, password: c.staff.password },
  });
  expect(login.status).toBe(200);
  const verified = await call("POST", "/auth/mfa/verify", {
    token: login.json.token,
    body: { code: totpCode(secret, h.deps.now()) },
  });
  expect(verified.status).toBe(200);
  return verified.json.token;
}

describe("/openapi.json", () => {
  it("is OpenAPI 3.1 with every curated operation, and lints with no errors (Redocly recommended)", async () => {
    const res = await fetch(`${url}/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          {
            operationId: string;
            requestBody: {
              content: Record<string, { schema: { properties: Record<string, unknown> } }>;
            };
          }
        >
      >;
    };
    expect(doc.openapi).toMatch(/^3\.1\./);
    const ids = Object.values(doc.paths).flatMap((p) => Object.values(p).map((o) => o.operationId));
    expect(ids.sort()).toEqual(REST_OPERATIONS.map((o) => o.operationId).sort());
    // Instants are ISO-8601 strings in the contract.
    const book = doc.paths["/api/v1/appointments"]?.post;
    expect(book?.requestBody.content["application/json"]?.schema.properties.startsAt).toMatchObject(
      {
        type: "string",
        format: "date-time",
      },
    );

    const config = await createConfig({ extends: ["recommended"] });
    const problems = await lintFromString({
      source: JSON.stringify(doc),
      absoluteRef: "openapi.json",
      config,
    });
    const errors = problems.filter((p) => p.severity === "error");
    const warnings = problems.filter((p) => p.severity === "warn");
    console.log(
      `[openapi] redocly recommended: ${errors.length} errors, ${warnings.length} warnings${warnings
        .slice(0, 10)
        .map((w) => `\n  warn ${w.ruleId}: ${w.message}`)
        .join("")}`,
    );
    expect(errors.map((e) => `${e.ruleId}: ${e.message}`)).toEqual([]);
  });

  it("the linter bites: a broken document has errors", async () => {
    const config = await createConfig({ extends: ["recommended"] });
    const problems = await lintFromString({
      source: JSON.stringify({
        openapi: "3.1.0",
        info: { title: "x" },
        paths: { "/a": { get: {} } },
      }),
      absoluteRef: "broken.json",
      config,
    });
    expect(problems.some((p) => p.severity === "error")).toBe(true);
  });
});

describe("REST round trip", () => {
  it("sign-in → MFA → search → slots → book → reschedule → cancel → list, with ISO instants and audit", async () => {
    const token = await staffToken();
    // Before MFA a staff session is refused with the documented shape.
    const pending = await call("POST", "/auth/sign-in", {
      body: { email: c.staff.email, password: c.staff.password },
    });
    const refused = await call("GET", `/patients/${c.patient.id}`, { token: pending.json.token });
    expect(refused.status).toBe(403);
    expect(refused.json.error).toMatchObject({ code: "FORBIDDEN", reason: "mfa_required" });

    const patient = await call("GET", `/patients/${c.patient.id}`, { token });
    expect(patient.status).toBe(200);
    const mrn = patient.json.demographics.mrn as string;
    const hits = await call("POST", "/patients/search", { token, body: { mrn } });
    expect(hits.status).toBe(200);
    expect(hits.json.map((p: { id: string }) => p.id)).toContain(c.patient.id);

    const from = new Date(Date.now() + 2 * 24 * 3600 * 1000).toISOString();
    const to = new Date(Date.now() + 9 * 24 * 3600 * 1000).toISOString();
    const slots = await call(
      "GET",
      `/practitioners/${c.practitionerId}/slots?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`,
      { token },
    );
    expect(slots.status).toBe(200);
    const [first, second] = slots.json.slots as { startsAt: string }[];
    if (!first || !second) throw new Error("expected two free slots");
    expect(first.startsAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);

    const booked = await call("POST", "/appointments", {
      token,
      body: {
        practitionerId: c.practitionerId,
        patientId: c.patient.id,
        startsAt: first.startsAt,
        reason: "follow-up",
      },
    });
    expect(booked.status).toBe(200);
    expect(booked.json).toMatchObject({ status: "booked", version: 1, startsAt: first.startsAt });

    const again = await call("POST", "/appointments", {
      token,
      body: { practitionerId: c.practitionerId, patientId: c.patient.id, startsAt: first.startsAt },
    });
    expect(again.status).toBe(409);
    expect(again.json.error).toMatchObject({ code: "CONFLICT", httpStatus: 409 });
    expect(typeof again.json.error.reason).toBe("string");

    const moved = await call("POST", `/appointments/${booked.json.id}/reschedule`, {
      token,
      body: { version: 1, startsAt: second.startsAt },
    });
    expect(moved.status).toBe(200);
    expect(moved.json).toMatchObject({ startsAt: second.startsAt, version: 2 });

    const stale = await call("POST", `/appointments/${booked.json.id}/cancel`, {
      token,
      body: { version: 1, reason: "patient called" },
    });
    expect(stale.status).toBe(409);

    const cancelled = await call("POST", `/appointments/${booked.json.id}/cancel`, {
      token,
      body: { version: 2, reason: "patient called" },
    });
    expect(cancelled.status).toBe(200);
    expect(cancelled.json.status).toBe("cancelled");

    const list = await call("GET", `/patients/${c.patient.id}/appointments?limit=10`, { token });
    expect(list.status).toBe(200);
    expect(list.json.items.map((a: { id: string }) => a.id)).toContain(booked.json.id);

    // The procedure's own audit trail recorded the REST reads and writes.
    const rows = await h.deps.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.actorUserId, c.staff.userId)));
    expect(rows.length).toBeGreaterThanOrEqual(3);
  });

  it("errors: 400 with field issues, 401 without a session, 403 for a cookie POST without Origin", async () => {
    const token = await staffToken();
    const bad = await call("POST", "/appointments", {
      token,
      body: { practitionerId: "nope", startsAt: "not a date" },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe("BAD_REQUEST");
    expect(bad.json.error.issues.map((i: { path: string }) => i.path)).toEqual(
      expect.arrayContaining(["practitionerId", "startsAt"]),
    );

    const anon = await call("GET", `/patients/${c.patient.id}`);
    expect(anon.status).toBe(401);
    expect(anon.json.error).toMatchObject({ code: "UNAUTHORIZED", httpStatus: 401 });

    const csrf = await call("POST", "/patients/search", {
      body: { mrn: "MRN-1" },
      headers: { cookie: `haven_session=${token}`, origin: "https://evil.example" },
    });
    expect(csrf.status).toBe(403);
    expect(csrf.json.error.code).toBe("FORBIDDEN");

    // A patient may not list slots' bookings for someone else: roles are the procedure's.
    const portal = await call("POST", "/auth/sign-in", {
      body: { email: c.patient.user.email, password: c.patient.user.password },
    });
    const search = await call("POST", "/patients/search", {
      token: portal.json.token,
      body: { mrn: "MRN-1" },
    });
    expect(search.status).toBe(403);
  });
});

describe("/docs", () => {
  it("serves Swagger UI from this origin under a CSP that loads nothing external", async () => {
    const res = await fetch(`${url}/docs/`, { redirect: "follow" });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain("swagger-ui");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/https?:/);
    // Every script and stylesheet the page names is same-origin.
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? "");
    expect(refs.filter((r) => /^(https?:)?\/\//.test(r))).toEqual([]);
    const init = await fetch(`${url}/docs/static/swagger-initializer.js`);
    expect(init.status).toBe(200);
  });
});
