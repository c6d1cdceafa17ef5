import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { reconnectBackoffSeconds } from "../../db/client.ts";
import { type RunningHaven, startHaven } from "../app.ts";
import { loadConfig } from "../config.ts";
import { makeOrganization, makeUser } from "../test/factory.ts";
import { LogSink } from "../test/harness.ts";
import { createCluster, type ThrowawayCluster } from "./cluster.ts";

/**
 * PostgreSQL outage (clients must be able to tell "retry soon" from a bug): with the database down, requests fail fast with 503 +
 * Retry-After (never 500, never a hang), /readyz says 503, and once PostgreSQL is back Haven
 * serves again as soon as the driver's capped reconnect backoff allows. Runs on a throwaway
 * cluster on port 46010 (never the shared one).
 */
const PORT = 46010;
/** A hang is a defect: no request may take longer than this while the database is down. */
const HANG_MS = 10_000;

let cluster: ThrowawayCluster;
let haven: RunningHaven;
let token: string;
const logs = new LogSink();

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const started = performance.now();
  const res = await fetch(`${haven.url}/trpc/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ json: body }),
    signal: AbortSignal.timeout(HANG_MS),
  });
  return { res, ms: performance.now() - started, body: await res.text() };
}

async function get(path: string, headers: Record<string, string> = {}) {
  const started = performance.now();
  const res = await fetch(`${haven.url}${path}`, { headers, signal: AbortSignal.timeout(HANG_MS) });
  return { res, ms: performance.now() - started, body: await res.text() };
}

beforeAll(async () => {
  cluster = await createCluster({ port: PORT });
  await cluster.psql("CREATE DATABASE haven");
  const config = loadConfig({
    NODE_ENV: "test",
    PORT: "0",
    DATABASE_URL: cluster.url("haven"),
    HAVEN_DEMO: "false",
    HAVEN_AUDIT_SEAL_INTERVAL_MS: "0",
    HAVEN_PHI_KEYS: `k1:${randomBytes(32).toString("base64")}`,
    HAVEN_BLIND_INDEX_KEY: randomBytes(32).toString("base64"),
    LOG_LEVEL: "info",
  });
  haven = await startHaven(config, { logDestination: logs });
  const deps = haven.services.deps as Parameters<typeof makeOrganization>[0];
  const org = await makeOrganization(deps);
  const user = await makeUser(deps, "patient", org);
  ({ token } = await createHavenClient({ url: haven.url }).auth.login.mutate({
    email: user.email,
    password: user.password,
  }));
});

afterAll(async () => {
  await haven?.close();
  await cluster?.destroy();
});

describe("PostgreSQL outage", () => {
  it("caps the driver's reconnect backoff well under a second", () => {
    for (let retries = 0; retries < 50; retries++) {
      expect(reconnectBackoffSeconds(retries)).toBeLessThanOrEqual(0.3125);
    }
  });

  it("answers 503 + Retry-After while the database is down, then serves again", async () => {
    const me = () => get("/trpc/auth.me", { authorization: `Bearer ${token}` });
    expect((await me()).res.status).toBe(200);

    await cluster.stop("fast");
    const seen: { what: string; status: number; ms: number }[] = [];
    // Stay down for ~3 s of steady traffic: enough failed reconnects that the driver's default
    // backoff (3^n/100 s, up to 20 s) would keep Haven unavailable for seconds after recovery.
    const downSince = performance.now();
    for (let round = 0; round < 3 || performance.now() - downSince < 3000; round++) {
      // Authenticated: the session lookup in createContext hits the database first.
      const a = await me();
      // Public mutation: the procedure itself hits the database.
      const b = await post("auth.login", {
        email: "nobody@haven.test",
        password: "not the right password",
      });
      const ready = await get("/readyz");
      for (const [what, r] of [
        ["auth.me", a],
        ["auth.login", b],
        ["/readyz", ready],
      ] as const) {
        seen.push({ what, status: r.res.status, ms: Math.round(r.ms) });
        expect(r.res.status, `${what} while down`).toBe(503);
        expect(Number(r.res.headers.get("retry-after")), `${what} Retry-After`).toBeGreaterThan(0);
        expect(r.body).not.toMatch(/ECONNREFUSED|postgres|stack|127\.0\.0\.1/i);
      }
      expect(JSON.parse(a.body).error.json.data.code).toBe("SERVICE_UNAVAILABLE");
      expect(JSON.parse(b.body).error.json.data.retryAfterSeconds).toBeGreaterThan(0);
    }

    await cluster.start();
    const back = performance.now();
    let recoveredMs = -1;
    let attempts = 0;
    while (performance.now() - back < HANG_MS) {
      attempts++;
      const r = await me();
      if (r.res.status === 200) {
        recoveredMs = Math.round(performance.now() - back);
        break;
      }
      expect(r.res.status).toBe(503);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(recoveredMs).toBeGreaterThanOrEqual(0);
    const slowest = Math.max(...seen.map((s) => s.ms));
    console.log(
      `[outage] while down: ${seen.length} requests, all 503, slowest ${slowest} ms\n` +
        `[outage] serving again ${recoveredMs} ms after PostgreSQL accepted connections (${attempts} polls)`,
    );
    // Nothing logged a 500 or driver detail with PHI-bearing parameters.
    expect(logs.text()).not.toMatch(/"status":500/);
  });
});
