import { sql } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { authThrottleEvents } from "../../db/schema/index.ts";
import { createLogger } from "../../lib/logger.ts";
import { MemoryMailTransport } from "../../lib/mail.ts";
import type { AppServices } from "../context.ts";
import { buildServer } from "../http.ts";
import { appRouter } from "../router.ts";
import { makeOrganization, makeUser } from "../test/factory.ts";
import { createHarness, type Harness, LogSink } from "../test/harness.ts";
import { SessionManager } from "./session.ts";
import { advance, auditRows, cookieCall, creds, errorOf, outcome } from "./test-utils.ts";

/**
 * Login throttling stored in Postgres (OWASP ASVS 2.2.1; ARCHITECTURE §3): per account and per IP,
 * shared by every app instance, answered with TOO_MANY_REQUESTS + Retry-After, audited, race-free,
 * and failing closed.
 */
let h: Harness;
let urlA: string;
let urlB: string;
let second: FastifyInstance;
let org: string;
const MIN = 60_000;

beforeAll(async () => {
  h = await createHarness({ maxConnections: 10 });
  urlA = await h.listen();
  // A second, independent app instance on the same database: its own services, session manager,
  // logger; nothing shared in memory with the first.
  const log = createLogger("info", new LogSink());
  const services: AppServices = {
    ...h.services,
    deps: { ...h.deps },
    log,
    mail: new MemoryMailTransport(log),
    sessions: new SessionManager(h.deps.db, {
      ttlHours: 12,
      secureCookies: false,
      now: h.deps.now,
    }),
  };
  second = await buildServer({
    router: appRouter,
    services,
    database: h.testDb.handle,
    allowedOrigins: [],
  });
  await second.listen({ host: "127.0.0.1", port: 0 });
  const addr = second.server.address();
  urlB = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  org = await makeOrganization(h.deps);
});
afterAll(async () => {
  await second?.close();
  await h?.close();
});
beforeEach(async () => {
  // every test starts with empty buckets (the per-IP bucket of 127.0.0.1 is shared by them all)
  await h.deps.db.delete(authThrottleEvents);
});

const login = (url: string, email: string, password: string) =>
  createHavenClient({ url }).auth.login.mutate({ email, password });

describe("failed logins per account", () => {
  it("the 6th wrong password in the window gets TOO_MANY_REQUESTS — from a second server instance too", async () => {
    const u = await makeUser(h.deps, "patient", org);
    for (let i = 0; i < 5; i++) {
      const url = i % 2 === 0 ? urlA : urlB;
      expect(await outcome(login(url, u.email, `wrong password number ${i}`))).toBe(
        "UNAUTHORIZED:invalid_credentials",
      );
      advance(h, 10_000);
    }
    // the sixth attempt, on the OTHER instance, even with the right password
    const res = await cookieCall(urlB, "auth.login", { origin: null, input: creds(u) });
    expect(res.status).toBe(429);
    const retry = Number(res.headers.get("retry-after"));
    // the oldest failure leaves the 15-minute window 15 min − 50 s from now
    expect(retry).toBe(15 * 60 - 50);
    const err = await errorOf(login(urlA, u.email, u.password));
    expect(err.data?.code).toBe("TOO_MANY_REQUESTS");
    expect(err.data?.httpStatus).toBe(429);
    expect(err.data?.retryAfterSeconds).toBe(retry);
    expect(err.message).not.toMatch(/password|account|exist/i);
    // audited: one lockout notice, each refused attempt, and no password anywhere
    const lockouts = await auditRows(h, "auth.lockout", u.userId);
    expect(lockouts).toHaveLength(1);
    expect(lockouts[0]?.details).toMatchObject({ scope: "login", failures: 5 });
    expect((await auditRows(h, "auth.login_throttled", u.userId)).length).toBe(2);
    const all = JSON.stringify(await auditRows(h, "auth.login_failed", u.userId));
    expect(all).not.toContain("wrong password");
    expect(all).not.toContain(u.password);
  });

  it("after the window the right password works, and success clears the account's failures", async () => {
    const u = await makeUser(h.deps, "patient", org);
    for (let i = 0; i < 5; i++) await outcome(login(urlA, u.email, "not the password at all"));
    expect(await outcome(login(urlA, u.email, u.password))).toBe("TOO_MANY_REQUESTS:rate_limited");
    advance(h, 15 * MIN);
    expect(await outcome(login(urlB, u.email, u.password))).toBe("OK");
    // counter reset: 5 more failures are allowed before the next lockout
    for (let i = 0; i < 5; i++) {
      expect(await outcome(login(urlA, u.email, "not the password at all"))).toBe(
        "UNAUTHORIZED:invalid_credentials",
      );
    }
    expect(await outcome(login(urlA, u.email, u.password))).toBe("TOO_MANY_REQUESTS:rate_limited");
  });

  it("an unknown e-mail is throttled exactly like a real one (no enumeration)", async () => {
    const ghost = `nobody-${Date.now()}@haven.test`;
    for (let i = 0; i < 5; i++) {
      expect(await outcome(login(urlA, ghost, "some guess 123456"))).toBe(
        "UNAUTHORIZED:invalid_credentials",
      );
    }
    expect(await outcome(login(urlB, ghost, "some guess 123456"))).toBe(
      "TOO_MANY_REQUESTS:rate_limited",
    );
  });

  it("a burst of 20 parallel guesses gets at most 5 password checks", async () => {
    const u = await makeUser(h.deps, "patient", org);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        outcome(login(i % 2 ? urlA : urlB, u.email, `parallel guess ${i}`)),
      ),
    );
    const checked = results.filter((r) => r === "UNAUTHORIZED:invalid_credentials").length;
    expect(checked).toBeLessThanOrEqual(5);
    expect(results.filter((r) => r === "TOO_MANY_REQUESTS:rate_limited").length).toBe(20 - checked);
  });
});

describe("failed logins per IP", () => {
  it("50 failures from one IP across many accounts block the 51st, whatever the account", async () => {
    const accounts = await Promise.all(
      Array.from({ length: 10 }, () => makeUser(h.deps, "patient", org)),
    );
    for (let i = 0; i < 50; i++) {
      const a = accounts[i % 10];
      expect(await outcome(login(i % 2 ? urlA : urlB, a?.email ?? "", "spray attempt 2024!"))).toBe(
        "UNAUTHORIZED:invalid_credentials",
      );
    }
    const fresh = await makeUser(h.deps, "patient", org);
    const err = await errorOf(login(urlA, fresh.email, fresh.password));
    expect(err.data?.code).toBe("TOO_MANY_REQUESTS");
    const throttled = await auditRows(h, "auth.login_throttled", fresh.userId);
    expect(throttled.at(-1)?.details).toMatchObject({ scope: "login", by: "ip" });
  });
});

describe("fail closed", () => {
  it("when the throttle's storage errors, a correct login is refused (and nothing is leaked)", async () => {
    const u = await makeUser(h.deps, "patient", org);
    await h.deps.db.execute(
      sql`ALTER TABLE auth_throttle_events RENAME TO auth_throttle_events_away`,
    );
    try {
      const err = await errorOf(login(urlA, u.email, u.password));
      expect(err.data?.code).toBe("TOO_MANY_REQUESTS");
      expect(err.message).toBe("Sign-in is temporarily unavailable; try again shortly");
      expect(JSON.stringify(err.shape)).not.toMatch(/auth_throttle|relation|SQL/i);
    } finally {
      await h.deps.db.execute(
        sql`ALTER TABLE auth_throttle_events_away RENAME TO auth_throttle_events`,
      );
    }
    expect(await outcome(login(urlA, u.email, u.password))).toBe("OK");
  });
});
