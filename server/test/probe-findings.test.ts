import { connect } from "node:net";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { SessionManager } from "../auth/session.ts";
import { loginWithMfa, makeOrganization, makePatient, makeUser } from "./factory.ts";
import { createHarness, type Harness } from "./harness.ts";

/**
 * Regression tests over HTTP for the protocol-level findings: the SSE stream's
 * Cache-Control, slow request bodies, API keys expiring in the past, a 1-minute idle timeout,
 * parallel correct sign-ins, and bound parameters in the logs of a failed query.
 */
let h: Harness;
let url: string;
let org: string;

beforeAll(async () => {
  h = await createHarness();
  // A 1-minute idle timeout (HAVEN_IDLE_TIMEOUT_MINUTES=1), on the injected clock.
  h.services.sessions = new SessionManager(h.deps.db, {
    ttlHours: 12,
    idleTimeoutMinutes: 1,
    secureCookies: false,
    now: h.deps.now,
  });
  url = await h.listen({ requestTimeoutMs: 1_500 });
  org = await makeOrganization(h.deps);
});
afterAll(async () => {
  await h?.close();
});

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    return (err as { data?: { httpStatus?: number } }).data?.httpStatus ?? 0;
  }
}

describe("SSE stream caching", () => {
  it("appointments.onChange is sent with Cache-Control: no-store", async () => {
    const staff = await makeUser(h.deps, "staff", org);
    const token = await loginWithMfa(h, url, staff);
    const ctl = new AbortController();
    const res = await fetch(`${url}/trpc/appointments.onChange?input=${encodeURIComponent("{}")}`, {
      headers: { accept: "text/event-stream", authorization: `Bearer ${token}` },
      signal: ctl.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    expect(res.headers.get("cache-control")).toBe("no-store");
    ctl.abort();
  });
});

describe("slow request bodies", () => {
  it("a body trickled one byte at a time is cut off by the request timeout", async () => {
    const { port } = new URL(url);
    const started = Date.now();
    const outcome = await new Promise<string>((resolve) => {
      const sock = connect(Number(port), "127.0.0.1", () => {
        sock.write(
          "POST /trpc/auth.login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        );
        const drip = setInterval(() => sock.write("{"), 400);
        let got = "";
        sock.on("data", (d) => {
          got += d.toString("latin1");
        });
        sock.on("close", () => {
          clearInterval(drip);
          resolve(got.split("\r\n")[0] ?? "closed");
        });
        sock.on("error", () => undefined);
        setTimeout(() => {
          clearInterval(drip);
          sock.destroy();
          resolve("still open");
        }, 10_000);
      });
    });
    expect(outcome).not.toBe("still open");
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(outcome === "closed" || outcome.startsWith("HTTP/1.1 408")).toBe(true);
  });
});

describe("API keys", () => {
  it("auth.apiKeys.create with expiresAt in the past is 400", async () => {
    const admin = await makeUser(h.deps, "admin", org);
    const client = createHavenClient({ url, token: await loginWithMfa(h, url, admin) });
    const past = new Date(h.deps.now().getTime() - 1_000);
    let reason: string | null | undefined;
    try {
      await client.auth.apiKeys.create.mutate({
        name: "k",
        scopes: ["reminders"],
        expiresAt: past,
      });
    } catch (err) {
      reason = (err as { data?: { reason?: string | null; httpStatus?: number } }).data?.reason;
    }
    expect(reason).toBe("expires_in_past");
    const future = new Date(h.deps.now().getTime() + 86_400_000);
    const ok = await client.auth.apiKeys.create.mutate({
      name: "k2",
      scopes: ["reminders"],
      expiresAt: future,
    });
    expect(ok.info.expiresAt?.getTime()).toBe(future.getTime());
  });
});

describe("HAVEN_IDLE_TIMEOUT_MINUTES=1", () => {
  it("an active session (a request every 10 s) stays signed in for 3 minutes, then idles out", async () => {
    const staff = await makeUser(h.deps, "staff", org);
    const client = createHavenClient({ url, token: await loginWithMfa(h, url, staff) });
    for (let s = 0; s < 180; s += 10) {
      h.clock.now = new Date(h.clock.now.getTime() + 10_000);
      expect(await status(client.auth.me.query()), `at ${s + 10} s`).toBe(200);
    }
    h.clock.now = new Date(h.clock.now.getTime() + 61_000);
    expect(await status(client.auth.me.query())).toBe(401);
  });
});

describe("parallel correct sign-ins", () => {
  it("10 concurrent correct auth.login calls of one account all succeed", async () => {
    const user = await makeUser(h.deps, "patient", org);
    const anon = createHavenClient({ url });
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        status(anon.auth.login.mutate({ email: user.email, password: user.password })),
      ),
    );
    expect(results).toEqual(Array(10).fill(200));
  });
  it("wrong passwords are still limited to 5 per account", async () => {
    const user = await makeUser(h.deps, "patient", org);
    const anon = createHavenClient({ url });
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        status(anon.auth.login.mutate({ email: user.email, password: "wrong password 1234" })),
      ),
    );
    expect(results.filter((s) => s === 401).length).toBeLessThanOrEqual(5);
    expect(results.filter((s) => s === 429).length).toBeGreaterThanOrEqual(5);
    expect(
      await status(anon.auth.login.mutate({ email: user.email, password: user.password })),
    ).toBe(429);
  });
});

describe("failed queries in the logs", () => {
  it("a failing query logs ids and frames only, never Drizzle's params or the SQL", async () => {
    const staff = await makeUser(h.deps, "staff", org);
    const patient = await makePatient(h.deps, org);
    const client = createHavenClient({ url, token: await loginWithMfa(h, url, staff) });
    await h.deps.db.execute(sql`alter table appointments rename to appointments_gone`);
    try {
      expect(
        await status(client.appointments.listForPatient.query({ patientId: patient.id })),
      ).toBe(500);
    } finally {
      await h.deps.db.execute(sql`alter table appointments_gone rename to appointments`);
    }
    const failed = h.logs.lines.filter((l) => l.includes("procedure failed"));
    expect(failed.length).toBeGreaterThan(0);
    const text = failed.join("\n");
    expect(text).not.toMatch(/params:|Failed query|select |appointments_gone|does not exist/i);
    expect(text).toContain('"code":"42P01"');
  });
});
