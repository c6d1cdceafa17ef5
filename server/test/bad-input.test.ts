import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient, isHavenError } from "../../client-sdk/index.ts";
import { patients } from "../../db/schema/index.ts";
import { loginWithMfa, makeOrganization, makePatient, makeUser } from "./factory.ts";
import { createHarness, type Harness } from "./harness.ts";

/**
 * Hostile and malformed input to every procedure: wrong types, huge strings, unknown fields.
 * Each must come back as BAD_REQUEST with field paths — never a 500 — and store nothing.
 */
let h: Harness;
let url: string;
let staffToken: string;
let patientToken: string;
let patientId: string;

const HUGE = "x".repeat(200_000);

beforeAll(async () => {
  h = await createHarness();
  url = await h.listen();
  const org = await makeOrganization(h.deps);
  patientId = (await makePatient(h.deps, org)).id;
  const staff = await makeUser(h.deps, "staff", org);
  const pat = await makeUser(h.deps, "patient", org);
  await h.deps.db.update(patients).set({ userId: pat.userId }).where(eq(patients.id, patientId));
  const anon = createHavenClient({ url });
  staffToken = await loginWithMfa(h, url, staff);
  patientToken = (await anon.auth.login.mutate({ email: pat.email, password: pat.password })).token;
});
afterAll(async () => {
  await h?.close();
});

type Call = (token: string) => Promise<unknown>;
const as = (token: string) => createHavenClient({ url, token });
// biome-ignore lint/suspicious/noExplicitAny: deliberately sending ill-typed input
const bad = (v: unknown) => v as any;

const cases: [string, "staff" | "patient" | "anon", Call, string][] = [
  [
    "auth.login wrong types",
    "anon",
    () => createHavenClient({ url }).auth.login.mutate(bad({ email: 42, password: [] })),
    "email",
  ],
  [
    "auth.login huge password",
    "anon",
    () => createHavenClient({ url }).auth.login.mutate({ email: "a@b.co", password: HUGE }),
    "password",
  ],
  [
    "auth.login huge email",
    "anon",
    () => createHavenClient({ url }).auth.login.mutate({ email: `${HUGE}@b.co`, password: "x" }),
    "email",
  ],
  [
    "auth.login unknown field",
    "anon",
    () =>
      createHavenClient({ url }).auth.login.mutate(
        bad({ email: "a@b.co", password: "x", role: "admin" }),
      ),
    "(root)",
  ],
  [
    "auth.login missing field",
    "anon",
    () => createHavenClient({ url }).auth.login.mutate(bad({ email: "a@b.co" })),
    "password",
  ],
  ["auth.me unknown field", "staff", (t) => as(t).auth.me.query(bad({ admin: true })), "(root)"],
  [
    "auth.logout unknown field",
    "staff",
    (t) => as(t).auth.logout.mutate(bad({ everywhere: 1 })),
    "(root)",
  ],
  [
    "patients.search wrong type",
    "staff",
    (t) => as(t).patients.search.query(bad({ mrn: 12 })),
    "mrn",
  ],
  [
    "patients.search huge family",
    "staff",
    (t) => as(t).patients.search.query({ family: HUGE, birthDate: "2000-01-01" }),
    "family",
  ],
  [
    "patients.search bad date",
    "staff",
    (t) => as(t).patients.search.query({ family: "X", birthDate: "2000-13-45" }),
    "birthDate",
  ],
  [
    "patients.search both shapes + extra",
    "staff",
    (t) => as(t).patients.search.query(bad({ mrn: "1", sql: "'; drop table patients;--" })),
    "(root)",
  ],
  ["patients.search empty", "staff", (t) => as(t).patients.search.query(bad({})), "(root)"],
  [
    "patients.get not a uuid",
    "staff",
    (t) => as(t).patients.get.query({ patientId: "../../etc/passwd" }),
    "patientId",
  ],
  [
    "patients.get huge id",
    "staff",
    (t) => as(t).patients.get.query({ patientId: HUGE }),
    "patientId",
  ],
  [
    "patients.get unknown field",
    "staff",
    (t) => as(t).patients.get.query(bad({ patientId, include: "*" })),
    "(root)",
  ],
  [
    "patients.get entryLimit out of range",
    "staff",
    (t) => as(t).patients.get.query({ patientId, entryLimit: 1e9 }),
    "entryLimit",
  ],
  [
    "patients.get wrong type",
    "patient",
    (t) => as(t).patients.get.query(bad({ patientId: { $ne: null } })),
    "patientId",
  ],
  [
    "appointments.listForPatient limit type",
    "staff",
    (t) => as(t).appointments.listForPatient.query(bad({ patientId, limit: "all" })),
    "limit",
  ],
  [
    "appointments.listForPatient huge cursor",
    "staff",
    (t) => as(t).appointments.listForPatient.query({ patientId, cursor: HUGE }),
    "cursor",
  ],
  [
    "appointments.listForPatient unknown field",
    "patient",
    (t) => as(t).appointments.listForPatient.query(bad({ patientId, all: true })),
    "(root)",
  ],
];

describe("bad input → BAD_REQUEST with field paths", () => {
  it.each(cases)("%s", async (_name, who, call, path) => {
    const token = who === "staff" ? staffToken : who === "patient" ? patientToken : "";
    try {
      await call(token);
      expect.unreachable("call should have failed");
    } catch (err) {
      if (!isHavenError(err)) throw err;
      expect(err.data?.code).toBe("BAD_REQUEST");
      expect(err.data?.httpStatus).toBe(400);
      const issues = err.data?.issues ?? [];
      expect(issues.length).toBeGreaterThan(0);
      expect(issues.map((i) => i.path)).toContain(path);
      expect(err.message.length).toBeLessThan(2_000);
      expect(err.message).not.toContain(HUGE.slice(0, 100));
    }
  });

  it("a malformed cursor is BAD_REQUEST, not a 500", async () => {
    try {
      await as(staffToken).appointments.listForPatient.query({
        patientId,
        cursor: "bm90LWEtY3Vyc29y",
      });
      expect.unreachable();
    } catch (err) {
      if (!isHavenError(err)) throw err;
      expect(err.data?.code).toBe("BAD_REQUEST");
    }
  });

  it("raw HTTP garbage never produces a 500", async () => {
    const probes: [string, RequestInit][] = [
      [
        "/trpc/auth.login",
        { method: "POST", headers: { "content-type": "application/json" }, body: "{not json" },
      ],
      [
        "/trpc/auth.login",
        {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ json: null }),
        },
      ],
      [
        "/trpc/patients.get?input=%7B%7B%7B",
        { headers: { authorization: `Bearer ${staffToken}` } },
      ],
      [
        "/trpc/patients.get?batch=1&input=%5B1%2C2%5D",
        { headers: { authorization: `Bearer ${staffToken}` } },
      ],
      ["/trpc/no.such.procedure", {}],
      [
        "/trpc/auth.login",
        {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: `{"json":{"email":"${"a".repeat(2_000_000)}"}}`,
        },
      ],
      ["/trpc/patients.get", { headers: { authorization: "Bearer ../../../" } }],
    ];
    for (const [path, init] of probes) {
      const res = await fetch(`${url}${path}`, init);
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.status, path).toBeLessThan(500);
      expect(await res.text(), path).not.toMatch(/\.ts:\d+|node_modules|at async/);
    }
  });

  it("nothing was stored by any rejected call", async () => {
    const rows = await h.deps.db.select({ id: patients.id }).from(patients);
    expect(rows).toHaveLength(1);
  });
});
