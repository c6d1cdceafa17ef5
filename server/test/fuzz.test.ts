import { fc, test } from "@fast-check/vitest";
import { sql } from "drizzle-orm";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { z } from "zod";
import { patients } from "../../db/schema/index.ts";
import { appRouter } from "../router.ts";
import {
  makeOrganization,
  makePatient,
  makePractitioner,
  makeServiceApiKey,
  makeUser,
} from "./factory.ts";
import { createHarness, type Harness } from "./harness.ts";

/**
 * Property-based fuzzing of every procedure over HTTP (issue 13). For each procedure of the router,
 * enumerated at run time, inputs come from its own input schema (`z.toJSONSchema` → fast-check
 * arbitraries) mixed with hostile values: wrong types, NUL and lone surrogates, long strings,
 * Date extremes, huge arrays, deep nesting, `__proto__`/`constructor` keys and unknown fields; the
 * caller is drawn from every role plus bad tokens and cookies. Properties:
 * - every answer is < 500 (a typed 4xx when refused), and no message holds internal text;
 * - a refused mutation leaves the domain tables unchanged (row counts and xmin);
 * - the server keeps answering /healthz.
 * A second group sends raw HTTP: every method, oversized bodies and batches, malformed superjson.
 *
 * CI: fixed seed 1313, 15 runs per procedure (FUZZ_RUNS overrides). Long mode: `npm run fuzz`
 * (FUZZ_LONG=1: 500 runs per procedure, a fresh seed, printed with the per-procedure tally;
 * FUZZ_SEED replays one).
 */
const LONG = process.env.FUZZ_LONG === "1";
const RUNS = Number(process.env.FUZZ_RUNS ?? (LONG ? 500 : 15));
const SEED = Number(process.env.FUZZ_SEED ?? (LONG ? Date.now() % 2 ** 31 : 1313));
const INTERNAL =
  /Maximum call stack|RangeError|TypeError|ReferenceError|SyntaxError|deserialize|superjson|SQLSTATE|params:|Failed query|at \S+ \(|node_modules|violates|relation "|column "/;

let h: Harness;
let url: string;
const tokens: Record<string, string> = {};
const ids: { org: string; patient: string; practitioner: string } = {
  org: "",
  patient: "",
  practitioner: "",
};
/** Per procedure: runs made and answers by status class, for the report. */
const tally = new Map<string, { runs: number; statuses: Record<string, number> }>();

beforeAll(async () => {
  h = await createHarness({ logLevel: "warn" });
  url = await h.listen();
  ids.org = await makeOrganization(h.deps);
  ids.patient = (await makePatient(h.deps, ids.org)).id;
  for (const role of ["patient", "clinician", "staff", "admin"] as const) {
    const u = await makeUser(h.deps, role, ids.org);
    if (role === "patient") {
      await h.deps.db.update(patients).set({ userId: u.userId }).where(sql`id = ${ids.patient}`);
    }
    if (role === "clinician") ids.practitioner = await makePractitioner(h.deps, ids.org, u.userId);
    tokens[role] = "";
    tokens[`${role}User`] = u.userId;
  }
  tokens.service = (await makeServiceApiKey(h.deps, ids.org)).key;
}, 120_000);
afterAll(async () => {
  const lines = [...tally.entries()].map(
    ([p, t]) => `${p}: ${t.runs} runs ${JSON.stringify(t.statuses)}`,
  );
  if (process.env.FUZZ_REPORT || LONG) console.log(`seed ${SEED}\n${lines.join("\n")}`);
  await h?.close();
});

/** A fresh session per role (no argon2: the fuzzer's own logouts must not poison later runs). */
async function freshTokens(): Promise<Record<string, string>> {
  const out: Record<string, string> = { service: tokens.service ?? "" };
  for (const role of ["patient", "clinician", "staff", "admin"]) {
    const { token } = await h.services.sessions.create(tokens[`${role}User`] ?? "", {
      ip: "127.0.0.1",
      userAgent: "fuzz",
      mfaVerified: true,
      now: h.deps.now(),
    });
    out[role] = token;
  }
  return out;
}

// ---------- schema → arbitrary ----------

type Json = Record<string, unknown>;

const hostileString = fc.oneof(
  fc.constant("a\u0000b"),
  fc.constant("\ud800"),
  fc.constant("x\udfffy"),
  fc.constant("'; drop table patients;--"),
  fc.constant("../../etc/passwd"),
  fc.constant("x".repeat(100_000)),
  fc.constant("\u202e\u0000\uffff"),
  fc.string({ unit: "binary", maxLength: 40 }),
);
const extremeDate = fc.oneof(
  fc.constant(new Date(8.64e15)),
  fc.constant(new Date(-8.64e15)),
  fc.constant(new Date(Number.NaN)),
  fc.constant(new Date("9999-12-31T23:59:59Z")),
  fc.constant(new Date(0)),
  fc.date({ noInvalidDate: false }),
);
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  extremeDate,
  fc.constant(null),
  fc.constant(undefined),
  fc.constant(Number.NaN),
  fc.constant(Number.POSITIVE_INFINITY),
  fc.constant(-0),
  fc.constant(2 ** 63),
  fc.constant(1e308),
  fc.bigInt(),
  fc.boolean(),
  fc.constant([]),
  fc.constant(Array.from({ length: 10_000 }, (_, i) => i)),
  fc.constant(JSON.parse('{"__proto__": {"admin": true}}')),
  fc.constant({ constructor: { prototype: { admin: true } } }),
  fc.constant(new Map([["a", 1]])),
  fc.constant(new Set([1, 2])),
  fc.constant(deep(40)),
  fc.constant(/x/),
);

function deep(n: number): unknown {
  let v: unknown = "x";
  for (let i = 0; i < n; i++) v = { a: v };
  return v;
}

const UUID_POOL = () => [
  ids.org,
  ids.patient,
  ids.practitioner,
  "00000000-0000-0000-0000-000000000000",
];

/** A fast-check arbitrary for a JSON Schema node from `z.toJSONSchema` (Haven's subset). */
function fromSchema(s: Json, depth = 0): fc.Arbitrary<unknown> {
  if (depth > 6) return fc.constant(null);
  const withHostile = (a: fc.Arbitrary<unknown>) =>
    fc.oneof({ weight: 6, arbitrary: a }, { weight: 1, arbitrary: hostileValue });
  if (s["x-haven-date"]) {
    return withHostile(
      fc.oneof(
        fc.date({ min: new Date("2020-01-01"), max: new Date("2030-01-01"), noInvalidDate: true }),
        extremeDate,
      ),
    );
  }
  if (Array.isArray(s.anyOf) || Array.isArray(s.oneOf)) {
    const branches = ((s.anyOf ?? s.oneOf) as Json[]).map((b) => fromSchema(b, depth + 1));
    return withHostile(fc.oneof(...branches));
  }
  if (Array.isArray(s.allOf) && s.allOf.length > 0) return fromSchema(s.allOf[0] as Json, depth);
  if (s.const !== undefined) return withHostile(fc.constant(s.const));
  if (Array.isArray(s.enum)) return withHostile(fc.constantFrom(...(s.enum as unknown[])));
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case "string": {
      if (s.format === "uuid") {
        return withHostile(fc.oneof(fc.constantFrom(...UUID_POOL()), fc.uuid()));
      }
      if (s.format === "email") {
        return withHostile(fc.oneof(fc.emailAddress(), fc.constant("a@b.co")));
      }
      if (typeof s.pattern === "string" && /\\d\{4\}-\\d\{2\}-\\d\{2\}/.test(s.pattern)) {
        return withHostile(
          fc.oneof(
            fc.constantFrom("2027-06-07", "9999-12-31", "0000-01-01", "2027-02-30", "1800-01-01"),
            fc
              .date({
                min: new Date("1900-01-01"),
                max: new Date("2100-01-01"),
                noInvalidDate: true,
              })
              .map((d) => d.toISOString().slice(0, 10)),
          ),
        );
      }
      const max = Math.min(Number(s.maxLength ?? 64), 600);
      const min = Math.min(Number(s.minLength ?? 0), max);
      return withHostile(fc.string({ minLength: min, maxLength: max }));
    }
    case "integer":
      return withHostile(
        fc.integer({
          min: Math.max(Number(s.minimum ?? -1_000_000), -2_147_483_648),
          max: Math.min(Number(s.maximum ?? 1_000_000), 2_147_483_647),
        }),
      );
    case "number":
      return withHostile(fc.double({ noNaN: false }));
    case "boolean":
      return withHostile(fc.boolean());
    case "null":
      return fc.constant(null);
    case "array": {
      const items = (s.items as Json | undefined) ?? {};
      return withHostile(
        fc.array(fromSchema(items, depth + 1), {
          minLength: Number(s.minItems ?? 0),
          maxLength: Math.min(Number(s.maxItems ?? 5), 8),
        }),
      );
    }
    case "object": {
      const props = (s.properties as Record<string, Json> | undefined) ?? {};
      const required = new Set((s.required as string[] | undefined) ?? []);
      const shape: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of Object.entries(props)) shape[k] = fromSchema(v, depth + 1);
      const keys = Object.keys(shape);
      const base = fc.record(shape, { requiredKeys: keys.filter((k) => required.has(k)) });
      // Sometimes an unknown field, or a prototype-polluting key.
      const extra = fc.oneof(
        fc.constant({}),
        fc.constant({ unknownField: 1 }),
        fc.constant(JSON.parse('{"__proto__": {"role": "admin"}}')),
        fc.constant({ constructor: "x" }),
      );
      return withHostile(
        fc.tuple(base, extra).map(([b, e]) => Object.assign(Object.create(null), e, b)),
      );
    }
    default:
      return hostileValue;
  }
}

/** JSON Schema of a procedure's input, with `z.date()` marked (JSON Schema cannot state it). */
function inputSchema(proc: { _def: { inputs?: unknown[] } }): Json | null {
  const first = proc._def.inputs?.[0];
  if (!first) return null;
  return z.toJSONSchema(first as z.ZodType, {
    io: "input",
    unrepresentable: "any",
    override: (ctx) => {
      if ((ctx.zodSchema as { _zod: { def: { type: string } } })._zod.def.type === "date") {
        (ctx.jsonSchema as Json)["x-haven-date"] = true;
      }
    },
  }) as Json;
}

// ---------- HTTP ----------

const CALLERS = [
  "anon",
  "patient",
  "clinician",
  "staff",
  "admin",
  "service",
  "badBearer",
  "badCookie",
  "apiKeyShape",
] as const;
type Caller = (typeof CALLERS)[number];

function headersFor(caller: Caller, t: Record<string, string>): Record<string, string> {
  switch (caller) {
    case "anon":
      return {};
    case "badBearer":
      return { authorization: "Bearer \u00ff\u00fe not-a-token" };
    case "badCookie":
      return { cookie: "haven_session=%00%zz; haven_session=x" };
    case "apiKeyShape":
      return { authorization: `Bearer hvn_${"A".repeat(43)}` };
    default:
      return { authorization: `Bearer ${t[caller] ?? ""}` };
  }
}

/**
 * superjson's wire form; for what the client-side superjson refuses to serialise (own
 * `__proto__` keys), the raw JSON a hostile client would send instead.
 */
function encode(input: unknown): unknown {
  try {
    return superjson.serialize(input);
  } catch {
    return JSON.parse(
      JSON.stringify({ json: input }, (_k, v) => (typeof v === "bigint" ? v.toString() : v)),
    );
  }
}

async function call(
  path: string,
  type: string,
  input: unknown,
  headers: Record<string, string>,
): Promise<{ status: number; text: string }> {
  const encoded = input === undefined ? undefined : encode(input);
  if (type === "subscription") {
    const q = encoded ? `?input=${encodeURIComponent(JSON.stringify(encoded))}` : "";
    const ctl = new AbortController();
    const res = await fetch(`${url}/trpc/${path}${q}`, {
      headers: { ...headers, accept: "text/event-stream" },
      signal: ctl.signal,
    });
    ctl.abort();
    return { status: res.status, text: "" };
  }
  const res = await fetch(`${url}/trpc/${path}`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: encoded === undefined ? "" : JSON.stringify(encoded),
  });
  return { status: res.status, text: await res.text() };
}

/**
 * Row count and newest xmin of every domain table: changes when any row is added, updated or
 * deleted. Audit, throttle and session tables are left out (refusals are audited and throttled).
 */
async function fingerprint(): Promise<string> {
  const tables = (await h.deps.db.execute(
    sql`select table_name as t from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' and table_name not in ('audit_events', 'audit_chain', 'audit_chain_links', 'auth_throttle_events', 'sessions', '__drizzle_migrations') order by 1`,
  )) as unknown as { t: string }[];
  const parts = tables.map(
    (r) =>
      sql`select ${r.t}::text as t, count(*)::text as n, ${
        // An API key's use stamps last_used_at: bookkeeping of the authentication, not the call.
        r.t === "api_keys" ? sql`'-'` : sql`coalesce(max(xmin::text::bigint), 0)::text`
      } as x from ${sql.identifier(r.t)}`,
  );
  const rows = (await h.deps.db.execute(sql.join(parts, sql` union all `))) as unknown as {
    t: string;
    n: string;
    x: string;
  }[];
  return rows.map((r) => `${r.t}:${r.n}:${r.x}`).join(",");
}

function record(path: string, status: number): void {
  const t = tally.get(path) ?? { runs: 0, statuses: {} };
  t.runs++;
  const k = `${Math.floor(status / 100)}xx`;
  t.statuses[k] = (t.statuses[k] ?? 0) + 1;
  tally.set(path, t);
}

// ---------- properties ----------

const procedures = Object.entries(
  appRouter._def.procedures as unknown as Record<
    string,
    { _def: { type: string; inputs?: unknown[] } }
  >,
);

describe("every procedure under fuzzed input and callers", () => {
  test("the router has procedures to fuzz", () => {
    expect(procedures.length).toBeGreaterThan(40);
  });
  for (const [path, proc] of procedures) {
    const schema = inputSchema(proc);
    const input = schema ? fromSchema(schema) : fc.oneof(fc.constant(undefined), hostileValue);
    test(`${path}: typed 4xx or success, never 5xx, no internal text, refused writes change nothing`, async () => {
      const t = await freshTokens();
      await fc.assert(
        fc.asyncProperty(input, fc.constantFrom(...CALLERS), async (value, caller) => {
          const before = proc._def.type === "mutation" ? await fingerprint() : "";
          const res = await call(path, proc._def.type, value, headersFor(caller, t));
          record(path, res.status);
          expect(res.status, `${caller} ${res.text.slice(0, 300)}`).toBeLessThan(500);
          expect(res.text).not.toMatch(INTERNAL);
          if (proc._def.type === "mutation" && res.status >= 400) {
            expect(await fingerprint(), `${caller} refused ${res.status}`).toBe(before);
          }
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
    }, 120_000);
  }
});

describe("raw HTTP: methods, sizes, batches, superjson meta", () => {
  const paths = procedures.map(([p]) => p);
  test("every HTTP method on every path answers < 500", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"),
        fc.constantFrom(...paths, "nope", "auth.login,auth.me", "%00", "..%2f..%2fetc"),
        async (method, path) => {
          const res = await fetch(`${url}/trpc/${path}`, {
            method,
            headers: { "content-type": "application/json" },
            ...(method === "GET" || method === "HEAD" ? {} : { body: "{}" }),
          });
          expect(res.status, `${method} ${path}`).toBeLessThan(500);
          expect(await res.text()).not.toMatch(INTERNAL);
        },
      ),
      { numRuns: Math.max(RUNS * 4, 50), seed: SEED },
    );
  });
  test("oversized bodies get 413, oversized batches 400", async () => {
    const big = await fetch(`${url}/trpc/auth.login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ json: { email: "a@b.co", password: "x".repeat(2_000_000) } }),
    });
    expect(big.status).toBe(413);
    const batch = Array.from({ length: 21 }, () => "auth.me").join(",");
    const res = await fetch(`${url}/trpc/${batch}?batch=1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(Object.fromEntries(Array.from({ length: 21 }, (_, i) => [i, {}]))),
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
  });
  test("malformed superjson meta and bodies answer 4xx without internal text", async () => {
    const meta = fc.oneof(
      fc.constant("nope"),
      fc.constant({ values: { a: ["class"] } }),
      fc.constant({ values: { a: [["custom", "x"]] } }),
      fc.constant({ values: { email: ["bigint"] } }),
      fc.constant({ values: { "__proto__.polluted": ["Date"] } }),
      fc.constant({ referentialEqualities: { a: ["__proto__.x"] } }),
      fc.constant({ values: { [`${"a.".repeat(3000)}a`]: ["Date"] } }),
      fc.dictionary(fc.string(), fc.jsonValue()),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...paths), fc.jsonValue(), meta, async (path, json, m) => {
        const res = await fetch(`${url}/trpc/${path}?batch=1`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ 0: { json, meta: m } }),
        });
        expect(res.status).toBeLessThan(500);
        expect(await res.text()).not.toMatch(INTERNAL);
      }),
      { numRuns: Math.max(RUNS * 4, 50), seed: SEED },
    );
    for (const body of ["{", "null", "[]", '{"0":', "\u0000", "x".repeat(10_000)]) {
      const res = await fetch(`${url}/trpc/auth.login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      expect(res.status, body.slice(0, 20)).toBeLessThan(500);
      expect(await res.text()).not.toMatch(INTERNAL);
    }
  });
});
