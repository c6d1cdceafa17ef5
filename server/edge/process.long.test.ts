import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { sessions } from "../../db/schema/index.ts";
import { hashSessionToken, SessionManager } from "../auth/session.ts";
import { Keyring } from "../crypto/keyring.ts";
import { PhiCrypto } from "../crypto/phi.ts";
import { createTestDatabase, type TestDatabase } from "../test/db.ts";
import { type Deps, makeOrganization, makeUser, type TestUser } from "../test/factory.ts";

/**
 * The two ways to run Haven as a process (issue 9 point 4): `npm start` (dev, through tsx) and the
 * built `node dist/server/main.js`. Both pass the same HTTP smoke checks, and SIGTERM drains a
 * server that holds idle keep-alive sockets, an SSE stream and in-flight writes within 10 s, with
 * every acknowledged write in the database afterwards.
 */
const PORTAL = "https://portal.clinic.example";
let db: TestDatabase;
let deps: Deps;
let env: NodeJS.ProcessEnv;
let patient: TestUser;
let staff: TestUser;

beforeAll(async () => {
  db = await createTestDatabase();
  const phiKey = randomBytes(32);
  const blindKey = randomBytes(32);
  deps = {
    db: db.handle.db,
    crypto: new PhiCrypto(
      new Keyring({ phiKeys: [{ id: "k1", key: phiKey }], blindIndexKey: blindKey }),
    ),
    now: () => new Date(),
  };
  const org = await makeOrganization(deps);
  patient = await makeUser(deps, "patient", org);
  staff = await makeUser(deps, "staff", org);
  env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
    DATABASE_URL: db.url,
    HAVEN_PHI_KEYS: `k1:${phiKey.toString("base64")}`,
    HAVEN_BLIND_INDEX_KEY: blindKey.toString("base64"),
    HAVEN_DEMO: "false",
    HAVEN_ALLOWED_ORIGINS: PORTAL,
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: "warn",
    NODE_ENV: "test",
  };
  execFileSync(process.execPath, ["scripts/build-server.mjs"], { stdio: "pipe" });
}, 180_000);
afterAll(async () => {
  await db?.drop();
});

interface Running {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
  output: () => string;
}

/** Spawn Haven and wait for its "ready" banner; resolves with its base URL. */
async function launch(command: string, args: string[]): Promise<Running> {
  const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const started = Date.now();
  for (;;) {
    const m = /API \(tRPC\):\s+(http:\/\/[^\s]+)\/trpc/.exec(out);
    if (m?.[1]) return { child, url: m[1], exited, output: () => out };
    if (child.exitCode !== null || Date.now() - started > 120_000)
      throw new Error(`Haven did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const MODES = [
  { name: "npm start (dev)", command: "npm", args: ["start", "--silent"] },
  { name: "built dist/server/main.js", command: process.execPath, args: ["dist/server/main.js"] },
] as const;

describe.each(MODES)("$name", ({ command, args }) => {
  it("passes the HTTP smoke checks", async () => {
    const haven = await launch(command, [...args]);
    try {
      const health = await fetch(`${haven.url}/healthz`);
      expect(health.status).toBe(200);
      expect(health.headers.get("content-security-policy")).toContain("default-src 'none'");
      expect(health.headers.get("x-content-type-options")).toBe("nosniff");
      expect((await fetch(`${haven.url}/readyz`)).status).toBe(200);
      const preflight = await fetch(`${haven.url}/trpc/auth.login`, {
        method: "OPTIONS",
        headers: { origin: PORTAL, "access-control-request-method": "POST" },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get("access-control-allow-origin")).toBe(PORTAL);
      const { token } = await createHavenClient({ url: haven.url }).auth.login.mutate({
        email: patient.email,
        password: patient.password,
      });
      const me = await createHavenClient({ url: haven.url, token }).auth.me.query();
      expect(me).toMatchObject({ user: { role: "patient" } });
    } finally {
      haven.child.kill("SIGTERM");
      await haven.exited;
    }
  }, 180_000);

  it("SIGTERM with keep-alive, SSE and in-flight writes: exits within 10 s, no acked write lost", async () => {
    const haven = await launch(command, [...args]);
    // An SSE stream held open by a signed-in staff member.
    const { token } = await createHavenClient({ url: haven.url }).auth.login.mutate({
      email: staff.email,
      password: staff.password,
    });
    await new SessionManager(db.handle.db, {
      ttlHours: 12,
      idleTimeoutMinutes: 15,
      secureCookies: false,
    }).markMfaVerified(hashSessionToken(token));
    const input = encodeURIComponent(JSON.stringify({ json: {} }));
    const sse = await fetch(`${haven.url}/trpc/appointments.onChange?input=${input}`, {
      headers: { accept: "text/event-stream", authorization: `Bearer ${token}` },
    });
    expect(sse.headers.get("content-type")).toMatch(/text\/event-stream/);
    const sseDone = (async () => {
      const reader = sse.body?.getReader();
      if (!reader) return;
      try {
        for (;;) if ((await reader.read()).done) return;
      } catch {
        return;
      }
    })();
    // Idle keep-alive sockets (fetch pools them) plus a stream of writes: each login is a session
    // row; a 200 means it was acknowledged.
    await (await fetch(`${haven.url}/healthz`)).arrayBuffer();
    const before = (
      await db.handle.db.select().from(sessions).where(eq(sessions.userId, patient.userId))
    ).length;
    let acked = 0;
    let stop = false;
    const writer = async () => {
      while (!stop) {
        try {
          await createHavenClient({ url: haven.url }).auth.login.mutate({
            email: patient.email,
            password: patient.password,
          });
          acked++;
        } catch {
          return;
        }
      }
    };
    const writers = [writer(), writer(), writer()];
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = performance.now();
    haven.child.kill("SIGTERM");
    const code = await haven.exited;
    const ms = performance.now() - t0;
    stop = true;
    await Promise.all(writers);
    await sseDone;
    const after = (
      await db.handle.db.select().from(sessions).where(eq(sessions.userId, patient.userId))
    ).length;
    console.log(
      `${command} ${args.join(" ")}: exit ${code} after ${Math.round(ms)} ms; acknowledged ${acked}, present ${after - before}`,
    );
    expect(code).toBe(0);
    expect(ms).toBeLessThan(10_000);
    // It drained on its own: the HAVEN_SHUTDOWN_TIMEOUT_MS safety net did not have to cut sockets.
    expect(haven.output()).not.toMatch(/drain cut off|longer than/);
    expect(acked).toBeGreaterThan(0);
    expect(after - before).toBeGreaterThanOrEqual(acked);
    // Nothing is left listening: npm's child did not outlive it.
    await expect(fetch(`${haven.url}/healthz`)).rejects.toThrow();
  }, 180_000);
});
