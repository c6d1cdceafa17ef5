import { and, eq } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { auditEvents } from "../../db/schema/index.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { buildServer } from "../http.ts";
import { appRouter } from "../router.ts";
import { makeOrganization, makeUser } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";

/**
 * HAVEN_TRUST_PROXY (issue 15 §3: logins behind HAProxy): the client IP that the login throttle,
 * the rate limiter, sessions and the audit trail see. Off by default, so a forged
 * `X-Forwarded-For` is ignored (CWE-348); with the proxy's address trusted, the right-most
 * untrusted entry is the client. Observed through the `auth.login` audit event's `ip`.
 */
let h: Harness;
let organizationId: string;
const servers: FastifyInstance[] = [];

async function start(trustProxy?: string[]): Promise<string> {
  const app = await buildServer({
    router: appRouter,
    services: h.services,
    database: h.testDb.handle,
    allowedOrigins: [],
    ...(trustProxy ? { trustProxy } : {}),
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  servers.push(app);
  const addr = app.server.address();
  return `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
}

/** Sign a fresh patient in with `X-Forwarded-For: xff`; returns the IP the audit trail recorded. */
async function loginIp(url: string, xff: string): Promise<string | null> {
  const user = await makeUser(h.deps, "patient", organizationId);
  const client = createHavenClient({
    url,
    fetch: (input, init) =>
      fetch(input, { ...init, headers: { ...(init?.headers ?? {}), "x-forwarded-for": xff } }),
  });
  await client.auth.login.mutate({ email: user.email, password: user.password });
  const [row] = await h.deps.db
    .select({ ip: auditEvents.ip })
    .from(auditEvents)
    .where(and(eq(auditEvents.action, "auth.login"), eq(auditEvents.resourceId, user.userId)));
  return row?.ip ?? null;
}

beforeAll(async () => {
  h = await createHarness();
  organizationId = await makeOrganization(h.deps);
});
afterAll(async () => {
  for (const s of servers) await s.close();
  await h?.close();
});

describe("trusted proxies", () => {
  it("off by default: a forged X-Forwarded-For is ignored, the TCP peer is the client", async () => {
    const url = await start();
    expect(await loginIp(url, "203.0.113.7")).toBe("127.0.0.1");
    const empty = await start([]);
    expect(await loginIp(empty, "203.0.113.7")).toBe("127.0.0.1");
  });

  it("with 127.0.0.1 trusted, the forwarded client address is used", async () => {
    const url = await start(["127.0.0.1"]);
    expect(await loginIp(url, "203.0.113.7")).toBe("203.0.113.7");
  });

  it("only the entries appended by trusted proxies count: a client's own forged entry is skipped", async () => {
    // The client sent `X-Forwarded-For: 198.51.100.9`; the (trusted) proxy appended the real peer.
    const url = await start(["127.0.0.1/32"]);
    expect(await loginIp(url, "198.51.100.9, 203.0.113.7")).toBe("203.0.113.7");
  });

  it("a proxy that is not in the list is not believed", async () => {
    const url = await start(["10.0.0.0/8"]);
    expect(await loginIp(url, "203.0.113.7")).toBe("127.0.0.1");
  });
});

describe("HAVEN_TRUST_PROXY", () => {
  it("is empty by default and takes addresses and CIDR ranges", () => {
    expect(loadConfig({}).HAVEN_TRUST_PROXY).toEqual([]);
    expect(
      loadConfig({ HAVEN_TRUST_PROXY: " 10.0.0.5, 10.1.0.0/16,::1 " }).HAVEN_TRUST_PROXY,
    ).toEqual(["10.0.0.5", "10.1.0.0/16", "::1"]);
  });

  it("refuses anything else, naming the variable", () => {
    for (const bad of ["true", "*", "proxy.internal", "10.0.0.0/33"]) {
      let caught: unknown;
      try {
        loadConfig({ HAVEN_TRUST_PROXY: bad });
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as Error).message).toContain("HAVEN_TRUST_PROXY");
    }
  });
});
