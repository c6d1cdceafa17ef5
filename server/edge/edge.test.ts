import { TRPCClientError } from "@trpc/client";
import { sql } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { type DatabaseHandle, openDatabase } from "../../db/client.ts";
import { buildServer, type RateLimitSettings } from "../http.ts";
import { appRouter } from "../router.ts";
import { makeOrganization, makeServiceApiKey } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";

/**
 * The HTTP edge (issue 9 point 5): helmet headers, CORS preflight for HAVEN_ALLOWED_ORIGINS, and
 * the general rate limiter whose counters live in Postgres, so two instances share one budget.
 */
const PORTAL = "https://portal.clinic.example";
let h: Harness;
let second: DatabaseHandle;
const servers: FastifyInstance[] = [];

async function start(
  opts: {
    hsts?: boolean;
    rateLimit?: RateLimitSettings;
    extra?: (app: FastifyInstance) => void;
  } = {},
): Promise<string> {
  const app = await buildServer({
    router: appRouter,
    services: h.services,
    database: h.testDb.handle,
    allowedOrigins: [PORTAL],
    hsts: opts.hsts ?? false,
    rateLimit: opts.rateLimit,
  });
  opts.extra?.(app);
  await app.listen({ host: "127.0.0.1", port: 0 });
  servers.push(app);
  const addr = app.server.address();
  return `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
}

beforeAll(async () => {
  h = await createHarness();
  // A second connection pool to the same database: what a second Haven instance would hold.
  second = await openDatabase({ url: h.testDb.url, maxConnections: 2 });
});
afterAll(async () => {
  for (const s of servers) await s.close();
  await second?.close();
  await h?.close();
});

describe("helmet", () => {
  it("sends a strict API CSP and the standard headers, HSTS only when asked", async () => {
    const plain = await start();
    const res = await fetch(`${plain}/healthz`);
    expect(res.headers.get("content-security-policy")).toBe(
      "default-src 'none';frame-ancestors 'none';base-uri 'none';form-action 'none'",
    );
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("cross-origin-resource-policy")).toBe("same-origin");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("strict-transport-security")).toBeNull();
    expect(res.headers.get("x-powered-by")).toBeNull();

    const prod = await start({ hsts: true });
    const p = await fetch(`${prod}/trpc/auth.me`);
    expect(p.headers.get("strict-transport-security")).toBe("max-age=31536000; includeSubDomains");
    expect(p.headers.get("content-security-policy")).toContain("default-src 'none'");
  });

  it("lets a route that serves HTML set its own CSP", async () => {
    const url = await start({
      extra: (app) =>
        app.get(
          "/panel-demo",
          {
            helmet: {
              contentSecurityPolicy: {
                useDefaults: false,
                directives: { defaultSrc: ["'self'"], scriptSrc: ["'self'"] },
              },
            },
          },
          async (_req, reply) => reply.type("text/html").send("<p>ok</p>"),
        ),
    });
    const res = await fetch(`${url}/panel-demo`);
    expect(res.headers.get("content-security-policy")).toBe("default-src 'self';script-src 'self'");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
  });
});

describe("CORS", () => {
  it("answers an allowed origin's preflight (was 415) and grants credentials", async () => {
    const url = await start();
    const res = await fetch(`${url}/trpc/auth.login`, {
      method: "OPTIONS",
      headers: {
        origin: PORTAL,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,authorization",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(PORTAL);
    expect(res.headers.get("access-control-allow-credentials")).toBe("true");
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    expect(res.headers.get("access-control-allow-headers")).toContain("authorization");
    const actual = await fetch(`${url}/trpc/auth.me`, { headers: { origin: PORTAL } });
    expect(actual.headers.get("access-control-allow-origin")).toBe(PORTAL);
  });

  it("grants nothing to an origin that is not listed", async () => {
    const url = await start();
    const res = await fetch(`${url}/trpc/auth.login`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    const actual = await fetch(`${url}/trpc/auth.me`, {
      headers: { origin: "https://evil.example" },
    });
    expect(actual.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("rate limiting across instances", () => {
  beforeEach(async () => {
    await h.testDb.handle.db.execute(sql`DELETE FROM rate_limit_buckets`);
  });

  it("two instances on one database share an IP budget: 429 + Retry-After past it", async () => {
    const limits = { perIp: 30, perSession: 1000, perApiKey: 1000, windowSeconds: 60 };
    const a = await start({ rateLimit: { db: h.testDb.handle.db, ...limits } });
    const b = await start({ rateLimit: { db: second.db, ...limits } });
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`${i % 2 ? a : b}/trpc/auth.me`);
      statuses.push(res.status);
      if (res.status === 429 && !limited) limited = res;
      else await res.arrayBuffer();
    }
    expect(statuses.filter((s) => s === 429)).toHaveLength(10);
    expect(statuses.slice(0, 30).every((s) => s !== 429)).toBe(true);
    expect(limited).toBeDefined();
    const retry = Number(limited?.headers.get("retry-after"));
    expect(retry).toBeGreaterThan(0);
    expect(retry).toBeLessThanOrEqual(60);
    // tRPC's own error envelope (superjson), so tRPC clients decode it like any procedure error.
    const body = (await limited?.json()) as {
      error: { json: { message: string; code: number; data: Record<string, unknown> } };
    };
    expect(body.error.json.code).toBe(-32029);
    expect(body.error.json.data).toMatchObject({
      code: "TOO_MANY_REQUESTS",
      httpStatus: 429,
      path: "auth.me",
      retryAfterSeconds: retry,
    });
    expect(body.error.json.message).toMatch(/^Too many requests; retry after \d+ s$/);
    // A batch gets one error entry per procedure, as tRPC's batch link expects.
    const batch = await fetch(`${a}/trpc/auth.me,auth.me?batch=1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ 0: { json: null }, 1: { json: null } }),
    });
    expect(batch.status).toBe(429);
    const entries = (await batch.json()) as { error: { json: { data: { code: string } } } }[];
    expect(entries.map((e) => e.error.json.data.code)).toEqual([
      "TOO_MANY_REQUESTS",
      "TOO_MANY_REQUESTS",
    ]);
    // The SDK surfaces the refusal as a typed error, not "Unable to transform response".
    const refused = await createHavenClient({ url: a })
      .auth.me.query()
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TRPCClientError);
    const data = (refused as { data?: Record<string, unknown> }).data;
    expect(data).toMatchObject({ code: "TOO_MANY_REQUESTS", httpStatus: 429 });
    expect(data?.retryAfterSeconds).toBeGreaterThan(0);
    // Probes are not API traffic: still answered while the IP is over its budget.
    expect((await fetch(`${a}/healthz`)).status).toBe(200);
  });

  it("the REST API under /api/v1 draws on the same budget as /trpc, with the REST error shape", async () => {
    const limits = { perIp: 6, perSession: 1000, perApiKey: 1000, windowSeconds: 60 };
    const a = await start({ rateLimit: { db: h.testDb.handle.db, ...limits } });
    const b = await start({ rateLimit: { db: second.db, ...limits } });
    const patient = "/api/v1/patients/018f0000-0000-7000-8000-000000000000";
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 10; i++) {
      // Alternating protocols and instances: one budget per caller, whichever door it uses.
      const res = await fetch(i % 2 ? `${a}${patient}` : `${b}/trpc/auth.me`);
      statuses.push(res.status);
      if (res.status === 429 && i % 2 && !limited) limited = res;
      else await res.arrayBuffer();
    }
    expect(statuses.slice(0, 6).every((s) => s !== 429)).toBe(true);
    expect(statuses.slice(6)).toEqual([429, 429, 429, 429]);
    expect(limited).toBeDefined();
    const retry = Number(limited?.headers.get("retry-after"));
    expect(retry).toBeGreaterThan(0);
    const body = (await limited?.json()) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({
      code: "TOO_MANY_REQUESTS",
      httpStatus: 429,
      retryAfterSeconds: retry,
    });
    expect(typeof body.error.requestId).toBe("string");
    // The reference docs are not API traffic.
    expect((await fetch(`${a}/openapi.json`)).status).toBe(200);
  });

  it("a service API key has its own, larger bucket", async () => {
    const limits = { perIp: 5, perSession: 5, perApiKey: 50, windowSeconds: 60 };
    const a = await start({ rateLimit: { db: h.testDb.handle.db, ...limits } });
    const b = await start({ rateLimit: { db: second.db, ...limits } });
    const { key } = await makeServiceApiKey(h.deps, await makeOrganization(h.deps));
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${i % 2 ? a : b}/trpc/auth.me`, {
        headers: { authorization: `Bearer ${key}` },
      });
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    expect(statuses.filter((s) => s === 429)).toHaveLength(0);
    // The key's traffic did not use up the anonymous budget of the same IP, which is separate.
    for (let i = 0; i < 5; i++) expect((await fetch(`${a}/trpc/auth.me`)).status).not.toBe(429);
    expect((await fetch(`${b}/trpc/auth.me`)).status).toBe(429);
  });

  it("a failing counter store does not fail the request (no 500)", async () => {
    const broken = await openDatabase({ url: h.testDb.url, maxConnections: 1 });
    await broken.close();
    const url = await start({
      rateLimit: { db: broken.db, perIp: 1, perSession: 1, perApiKey: 1, windowSeconds: 60 },
    });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${url}/healthz`);
      expect(res.status).toBe(200);
      const api = await fetch(`${url}/trpc/auth.me`);
      expect(api.status).not.toBe(500);
      expect(api.status).not.toBe(429);
    }
  });
});

describe("access log", () => {
  it("names the request id once per line", async () => {
    const url = await start();
    await (await fetch(`${url}/healthz`)).arrayBuffer();
    const line = h.logs.lines.find((l) => l.includes('"path":"/healthz"'));
    expect(line).toBeDefined();
    expect(line?.match(/"reqId"/g)).toHaveLength(1);
  });

  it("names it once on refusal lines too (tRPC and REST cross-origin cookie requests)", async () => {
    const url = await start();
    const from = h.logs.lines.length;
    const refused = { origin: "https://evil.example", cookie: "haven_session=abc" };
    const trpc = await fetch(`${url}/trpc/auth.logout`, {
      method: "POST",
      headers: { ...refused, "content-type": "application/json" },
      body: "{}",
    });
    expect(trpc.status).toBe(403);
    const rest = await fetch(`${url}/api/v1/patients/search`, {
      method: "POST",
      headers: { ...refused, "content-type": "application/json" },
      body: JSON.stringify({ mrn: "x" }),
    });
    expect(rest.status).toBe(403);
    const lines = h.logs.lines.slice(from);
    expect(lines.filter((l) => l.includes("cross-origin cookie"))).toHaveLength(2);
    for (const l of lines) expect(l.match(/"reqId"/g)?.length ?? 0, l).toBeLessThanOrEqual(1);
  });
});
