import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_BUNDLE_DIR, DEMO_PATIENT_FHIR_ID } from "../server/demo/seed.ts";
import { createTestDatabase, type TestDatabase } from "../server/test/db.ts";
import {
  REPO_ROOT,
  runScript,
  type ServerProcess,
  startServerProcess,
} from "../server/test/spawn.ts";

/**
 * The README is executable (issue 9 point 6): every `examples/*.ts` is shown verbatim in the
 * README, and runs, as a user runs it (`npx tsx examples/<file>`, a separate process talking to
 * Haven over HTTP through the SDK), against a real Haven started with the demo data, here on a
 * fresh PostgreSQL database (`HAVEN_DEMO=true`). Each example's output is asserted.
 */
let db: TestDatabase;
let dataDir: string;
let server: ServerProcess | undefined;
let readme: string;

/** The demo patient's name as Synthea wrote it (what read-record.ts must print). */
async function demoPatientName(): Promise<string> {
  const file = (await readdir(DEMO_BUNDLE_DIR)).find((f) => f.includes(DEMO_PATIENT_FHIR_ID));
  const bundle = JSON.parse(await readFile(join(DEMO_BUNDLE_DIR, file as string), "utf8")) as {
    entry: { resource: { resourceType: string; name?: { family: string; given: string[] }[] } }[];
  };
  const name = bundle.entry.find((e) => e.resource.resourceType === "Patient")?.resource.name?.[0];
  return `${name?.given.join(" ")} ${name?.family}`;
}

/** The clinician's TOTP secret from the start-up banner (the same as in demo-logins.txt). */
function clinicianSecret(output: string): string {
  const m = /clinician\s+clinician@haven\.demo[^\n]*\n\s+TOTP secret (\S+)/.exec(output);
  if (!m?.[1]) throw new Error(`no clinician TOTP secret in the banner:\n${output}`);
  return m[1];
}

/** How each example is run and what it must print. */
const EXAMPLES: Record<string, (url: string) => Promise<void>> = {
  "read-record.ts": async (url) => {
    const r = await runScript("examples/read-record.ts", [], { HAVEN_URL: url });
    expect(r.code, r.stderr).toBe(0);
    const m = /^(.+): (\d+) clinical entries\n$/.exec(r.stdout);
    expect(m?.[1]).toBe(await demoPatientName());
    expect(Number(m?.[2])).toBeGreaterThan(0);
  },
  "clinician-mfa.ts": async (url) => {
    const secret = clinicianSecret(server?.output() ?? "");
    const r = await runScript("examples/clinician-mfa.ts", [secret], { HAVEN_URL: url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("after the password: verify\nclinician, MFA verified: true\n");
  },
};

beforeAll(async () => {
  readme = await readFile(join(REPO_ROOT, "README.md"), "utf8");
  db = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), "haven-examples-"));
  server = await startServerProcess(
    {
      DATABASE_URL: db.url,
      HAVEN_PHI_KEYS: `k1:${randomBytes(32).toString("base64")}`,
      HAVEN_BLIND_INDEX_KEY: randomBytes(32).toString("base64"),
      HAVEN_DATA_DIR: dataDir,
      HAVEN_DEMO: "true",
      HAVEN_AUDIT_SEAL_INTERVAL_MS: "0",
    },
    180_000,
  );
}, 200_000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

const files = (await readdir(join(REPO_ROOT, "examples")))
  .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
  .sort();

it("every example has a run here, and every run an example", () => {
  expect(files).toEqual(Object.keys(EXAMPLES).sort());
});

describe.each(files)("examples/%s", (file) => {
  it("is shown verbatim in the README, with the command that runs it", async () => {
    const source = await readFile(join(REPO_ROOT, "examples", file), "utf8");
    expect(readme).toContain(`\`\`\`ts\n${source}\`\`\`\n`);
    expect(readme).toContain(`npx tsx examples/${file}`);
  });

  it("runs against a started Haven with the demo data and prints what the README says", async () => {
    const run = EXAMPLES[file];
    if (!run || !server) throw new Error(`no run for ${file}`);
    await run(server.url);
  }, 60_000);
});
