import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../../client-sdk/index.ts";
import { DEMO_LOGINS } from "../../demo/seed.ts";
import { runScript, type ServerProcess, startServerProcess } from "../spawn.ts";

/**
 * kill -9 loop on the embedded default: 5 cycles of a server under
 * concurrent writes (sign-ins: each acknowledged sign-in is a committed `sessions` row and an
 * `auth.login` audit row), killed with SIGKILL at a random
 * moment mid-write. Afterwards a fresh server must know every acknowledged session, and the audit
 * hash chain must verify. The figure is printed (README "Embedded mode guarantees").
 */
const CYCLES = 5;
const WRITERS = 4;
let dir: string;
let server: ServerProcess | undefined;
const patient = DEMO_LOGINS.find((l) => l.role === "patient");
const env = () => ({ HAVEN_DATA_DIR: dir, HAVEN_AUDIT_SEAL_INTERVAL_MS: "500" });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "haven-kill9-"));
});
afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("kill -9 during writes on the embedded default", () => {
  it(`keeps every acknowledged write across ${CYCLES} kill -9 cycles`, async () => {
    if (!patient) throw new Error("no demo patient login");
    const acknowledged: string[] = [];
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      server = await startServerProcess(env(), 180_000);
      const url = server.url;
      let killed = false;
      const writer = async () => {
        while (!killed) {
          try {
            const { token } = await createHavenClient({ url }).auth.login.mutate({
              email: patient.email,
              password: patient.password,
            });
            acknowledged.push(token);
          } catch {
            // Requests cut off by the kill were never acknowledged.
          }
        }
      };
      const writers = Array.from({ length: WRITERS }, writer);
      await new Promise((r) => setTimeout(r, 1500 + Math.random() * 2500));
      await server.kill9();
      killed = true;
      await Promise.all(writers);
      server = undefined;
    }

    server = await startServerProcess(env(), 180_000);
    let present = 0;
    const url = server.url;
    for (const token of acknowledged) {
      const ok = await createHavenClient({ url, token })
        .auth.me.query()
        .then(
          () => true,
          () => false,
        );
      if (ok) present++;
    }
    await server.stop();
    server = undefined;
    const verify = await runScript("server/audit/cli.ts", ["verify"], env(), 120_000);
    console.log(
      `kill -9 loop: ${CYCLES} cycles, ${acknowledged.length} acknowledged sign-ins (each with its auth.login audit row); ` +
        `${present} of ${acknowledged.length} sessions present afterwards; audit verify exit ${verify.code}`,
    );
    expect(acknowledged.length).toBeGreaterThan(CYCLES);
    expect(present).toBe(acknowledged.length);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });
});
