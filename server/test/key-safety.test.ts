import { randomBytes } from "node:crypto";
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHaven, startHaven } from "../app.ts";
import { loadConfig } from "../config.ts";
import { KeyError } from "../crypto/keyring.ts";
import { createTestDatabase, type TestDatabase } from "./db.ts";
import { type Deps, makeOrganization, makePatient } from "./factory.ts";
import { LogSink } from "./harness.ts";
import { freePort, runScript, startServerProcess } from "./spawn.ts";

/**
 * Key safety across processes on PostgreSQL: servers advertise the keys they hold;
 * `keys rotate` refuses a key some live server lacks and names it, and succeeds once every server
 * holds it; a server whose keys cannot decrypt stored data refuses to start and is never ready;
 * a server is not ready while another live server encrypts under a key it lacks; no fresh key
 * file is generated for a database that already holds ciphertext.
 */
const b64 = () => randomBytes(32).toString("base64");
const K1 = `k1:${b64()}`;
const K2 = `k2:${b64()}`;
const BLIND = b64();

let db: TestDatabase;
let dataDir: string;
const running: RunningHaven[] = [];

function serverEnv(phiKeys: string, url = db.url): Record<string, string> {
  return {
    NODE_ENV: "test",
    PORT: "0",
    DATABASE_URL: url,
    HAVEN_DATA_DIR: dataDir,
    HAVEN_DEMO: "false",
    HAVEN_AUDIT_SEAL_INTERVAL_MS: "0",
    HAVEN_INSTANCE_HEARTBEAT_MS: "200",
    HAVEN_PHI_KEYS: phiKeys,
    HAVEN_BLIND_INDEX_KEY: BLIND,
    LOG_LEVEL: "warn",
  };
}

async function start(phiKeys: string, url = db.url): Promise<RunningHaven> {
  const haven = await startHaven(loadConfig(serverEnv(phiKeys, url)), {
    logDestination: new LogSink(),
  });
  running.push(haven);
  return haven;
}

async function stop(haven: RunningHaven): Promise<void> {
  running.splice(running.indexOf(haven), 1);
  await haven.close();
}

async function readyStatus(haven: RunningHaven): Promise<number> {
  return (await fetch(`${haven.url}/readyz`)).status;
}

/** Poll until `f()` returns `want` (or time out and return the last value). */
async function eventually<T>(f: () => Promise<T>, want: T, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  let last = await f();
  while (last !== want && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    last = await f();
  }
  return last;
}

beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), "haven-keysafety-"));
});
afterAll(async () => {
  for (const h of [...running]) await h.close();
  await db?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe("key safety across processes", () => {
  it("keys rotate is refused while a live server lacks the new key, and succeeds once all hold it", async () => {
    const a = await start(K1);
    const deps = a.services.deps as Deps;
    const org = await makeOrganization(deps);
    for (let i = 0; i < 3; i++) await makePatient(deps, org);

    const env = { ...serverEnv(`${K2},${K1}`), HAVEN_DATA_DIR: dataDir };
    const refused = await runScript("server/crypto/cli.ts", ["rotate"], env);
    expect(refused.code).toBe(1);
    const line = refused.stderr.trim();
    expect(line.split("\n")).toHaveLength(1);
    expect(line).toMatch(/refusing to rotate to key "k2": 1 live server\(s\) do not hold it/);
    expect(line).toContain(`pid ${process.pid} (${a.url}`);
    expect(refused.stdout).not.toMatch(/re-encrypted/);
    expect(await readyStatus(a)).toBe(200);

    // Restart the server with the new key (first) and the old one: now every live server holds k2.
    await stop(a);
    const a2 = await start(`${K2},${K1}`);
    const done = await runScript("server/crypto/cli.ts", ["rotate"], env);
    expect(done.stderr).not.toMatch(/refusing/);
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/Rotation to key "k2": \d+ of \d+ values re-encrypted/);
    expect(await readyStatus(a2)).toBe(200);
    await stop(a2);
  });

  it("a server whose keys cannot decrypt stored data refuses to start, and /readyz is never ready", async () => {
    // The data is under k2 now. A server with only k1 lacks it; one with another "k2" has wrong material.
    const refusingPort = await freePort();
    const child = startServerProcess({
      ...serverEnv(K1),
      PORT: String(refusingPort),
    }).catch((err: unknown) => err as Error);
    const statuses = new Set<number | string>();
    let settled = false;
    void child.then(() => {
      settled = true;
    });
    while (!settled) {
      const s = await fetch(`http://127.0.0.1:${refusingPort}/readyz`, {
        signal: AbortSignal.timeout(1000),
      }).then(
        (r) => r.status,
        () => "no answer",
      );
      statuses.add(s);
      await new Promise((r) => setTimeout(r, 25));
    }
    const result = await child;
    expect(result).toBeInstanceOf(Error);
    const message = (result as Error).message;
    expect(message).toMatch(/server exited \(1\) before ready/);
    expect(message).toMatch(
      /The configured PHI keys cannot decrypt data in this database: key "k2" protects stored data \(.*patients\.demographics.*\) but is not loaded/,
    );
    expect(message).not.toMatch(/\n\s+at /);
    expect(statuses.has(200)).toBe(false);

    const wrongMaterial = await startHaven(loadConfig(serverEnv(`k2:${b64()}`)), {
      logDestination: new LogSink(),
    }).catch((e: unknown) => e);
    expect(wrongMaterial).toBeInstanceOf(KeyError);
    expect((wrongMaterial as KeyError).message).toMatch(
      /key "k2" is loaded but does not decrypt stored data .*wrong key material/,
    );
  });

  it("a server is not ready while another live server encrypts under a key it lacks", async () => {
    const other = await createTestDatabase();
    try {
      const a = await start(K1, other.url);
      expect(await readyStatus(a)).toBe(200);
      const b = await start(`${K2},${K1}`, other.url);
      // b writes under k2, which a cannot decrypt: a must stop saying ready (within heartbeats).
      expect(await eventually(() => readyStatus(a), 503)).toBe(503);
      expect(await readyStatus(b)).toBe(200);
      await stop(b);
      expect(await eventually(() => readyStatus(a), 200)).toBe(200);
      await stop(a);
    } finally {
      await other.drop();
    }
  });

  it("never generates a fresh key file for a database that already holds encrypted data", async () => {
    const emptyDir = await mkdtemp(join(tmpdir(), "haven-nokeys-"));
    try {
      const config = loadConfig({
        NODE_ENV: "test",
        PORT: "0",
        DATABASE_URL: db.url,
        HAVEN_DATA_DIR: emptyDir,
        HAVEN_DEMO: "false",
        LOG_LEVEL: "warn",
      });
      const err = await startHaven(config, { logDestination: new LogSink() }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KeyError);
      expect((err as KeyError).message).toMatch(
        /database already holds encrypted data: refusing to generate new keys/,
      );
      await expect(access(join(emptyDir, "keys.json"))).rejects.toThrow();
    } finally {
      await rm(emptyDir, { recursive: true, force: true });
    }
  });
});
