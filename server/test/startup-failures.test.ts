import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CommandResult, runScript } from "./spawn.ts";

/**
 * Clear failures at startup: each cause is ONE line on stderr, no stack, exit code
 * non-zero, before any migration or seed runs. Real `server/main.ts` processes.
 */
const NOTHING_LISTENS = 41_997;
const OCCUPIED = 41_998;
let dir: string;
let blocker: Server;

function expectOneLine(r: CommandResult, pattern: RegExp) {
  expect(r.code).not.toBe(0);
  expect(r.code).not.toBeNull();
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at |Error:/);
}

const adminUrl = () =>
  new URL(process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres");

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "haven-startup-"));
  blocker = createServer();
  await new Promise<void>((r) => blocker.listen(OCCUPIED, "127.0.0.1", () => r()));
});
afterAll(async () => {
  await new Promise<void>((r) => blocker.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

const start = (env: Record<string, string>) =>
  runScript("server/main.ts", [], { HAVEN_DATA_DIR: dir, HAVEN_DEMO: "false", ...env });

describe("one-line startup failures", () => {
  it("PostgreSQL unreachable names host:port", async () => {
    const r = await start({
      DATABASE_URL: `postgres://postgres@127.0.0.1:${NOTHING_LISTENS}/haven`,
    });
    expectOneLine(
      r,
      new RegExp(
        `^PostgreSQL is unreachable at 127\\.0\\.0\\.1:${NOTHING_LISTENS}: connection refused`,
      ),
    );
  });

  it("a missing database is named", async () => {
    const url = adminUrl();
    url.pathname = "/haven_no_such_database_9";
    const r = await start({ DATABASE_URL: url.toString() });
    expectOneLine(r, /has no database "haven_no_such_database_9"/);
  });

  it("authentication refused names the user, never a password", async () => {
    const url = adminUrl();
    url.username = "haven_no_such_role_9";
    url.password = "hunter2-secret";
    const r = await start({ DATABASE_URL: url.toString() });
    expectOneLine(r, /refused authentication for user "haven_no_such_role_9"/);
    expect(r.stderr).not.toContain("hunter2-secret");
  });

  it("the port already in use, before the embedded database is even opened", async () => {
    const r = await start({ PORT: String(OCCUPIED) });
    expectOneLine(r, new RegExp(`^Port ${OCCUPIED} on 127\\.0\\.0\\.1 is already in use`));
    // Refused before the embedded database was even created, let alone migrated or seeded.
    expect(existsSync(join(dir, "pglite"))).toBe(false);
  });

  it("HAVEN_PHI_KEYS in the wrong format shows the expected format", async () => {
    const r = await start({
      HAVEN_PHI_KEYS: "just-some-key-without-an-id",
      HAVEN_BLIND_INDEX_KEY: Buffer.alloc(32, 7).toString("base64"),
    });
    expectOneLine(
      r,
      /HAVEN_PHI_KEYS has no "keyId:" prefix; expected HAVEN_PHI_KEYS=keyId:base64key\[,keyId2:base64key2…\]/,
    );
    expect(r.stderr).not.toContain("just-some-key-without-an-id");
  });

  it("`npm run totp -- notbase32!!` says what is wrong with the secret", async () => {
    const r = await runScript("server/mfa/totp-cli.ts", ["notbase32!!"], {});
    expectOneLine(
      r,
      /the secret is not base32: it contains "!" \(base32 uses only the letters A-Z and the digits 2-7\)/,
    );
    expect(r.stdout).toBe("");
  });
});
