import { execFile } from "node:child_process";
import { cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeClinic } from "../server/appointments/fixtures.ts";
import { enrolTotpDirectly, totpCode } from "../server/mfa/service.ts";
import { makeUser } from "../server/test/factory.ts";
import { createHarness, type Harness } from "../server/test/harness.ts";

/**
 * Issue 11, the consumer test: the SDK as a frontend team gets it. Build and `npm pack` the
 * package, install the tarball (plus only its peers) into a temporary copy of `e2e/sdk-consumer`,
 * then (a) strict typecheck with `skipLibCheck: false`, (b) every `@ts-expect-error` is needed,
 * (c) the type-level no-`any` walk (part of (a): `src/types.ts`), (d) the live script in plain
 * `node` against a Haven on Postgres. attw and publint run on the same tarball.
 */
const run = promisify(execFile);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const sdk = join(repo, "client-sdk");
const tsc = join(repo, "node_modules", ".bin", "tsc");
const bin = (name: string) => join(repo, "node_modules", ".bin", name);

let work: string;
let consumer: string;
let tarball: string;
let h: Harness;
let c: Awaited<ReturnType<typeof makeClinic>>;
let url: string;
/** TOTP secrets: the SDK run and the REST run sign in as different staff (TOTP replay guard). */
let sdkSecret: string;
let restUser: Awaited<ReturnType<typeof makeUser>>;
let restSecret: string;

async function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  try {
    return await run(cmd, args, {
      cwd,
      env: { ...process.env, ...env },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? "", stderr: e.stderr ?? "", code: e.code ?? 1 };
  }
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "haven-consumer-"));
  consumer = join(work, "consumer");
  const [packed] = await Promise.all([
    // `prepack` builds dist/ (esbuild + bundled .d.ts) and fails on disallowed type dependencies.
    sh("npm", ["pack", "--pack-destination", work, "--json"], sdk),
    cp(join(repo, "e2e", "sdk-consumer"), consumer, {
      recursive: true,
      filter: (src) => !/node_modules|[\\/]out$/.test(src),
    }),
    (async () => {
      h = await createHarness();
    })(),
  ]);
  const file = (await readdir(work)).find((f) => f.endsWith(".tgz"));
  if (!file) throw new Error(`npm pack produced no tarball:\n${packed.stderr}`);
  tarball = join(work, file);
  const installed = await sh(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--prefer-offline",
      tarball,
      "@trpc/client@11.25.2",
      "@trpc/server@11.25.2",
    ],
    consumer,
  );
  if ("code" in installed) throw new Error(`npm install failed:\n${installed.stderr}`);

  c = await makeClinic(h);
  sdkSecret = await enrolTotpDirectly(h.deps, c.staff.userId);
  restUser = await makeUser(h.deps, "staff", c.organizationId);
  restSecret = await enrolTotpDirectly(h.deps, restUser.userId);
  url = await h.listen();
  // The REST client's types come from the live server's document (openapi-typescript).
  const doc = await fetch(`${url}/openapi.json`);
  if (doc.status !== 200) throw new Error(`/openapi.json answered ${doc.status}`);
  await writeFile(join(consumer, "openapi.json"), await doc.text());
  const generated = await sh("npm", ["run", "generate"], consumer);
  if ("code" in generated) throw new Error(`openapi-typescript failed:\n${generated.stderr}`);
}, 400_000);

afterAll(async () => {
  await h?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

// Each step shells out (tsc, node, npm): give them room on a loaded CI machine.
const STEP = { timeout: 240_000 };

describe("@haven/client from its tarball, in a standalone strict project", () => {
  it("prints the tarball and declaration sizes", STEP, async () => {
    const tgz = (await stat(tarball)).size;
    const dts = (await stat(join(consumer, "node_modules/@haven/client/dist/index.d.ts"))).size;
    console.log(`[consumer] tarball ${tgz} B; dist/index.d.ts ${dts} B`);
    expect(tgz).toBeGreaterThan(0);
    // Only dist/, README and package.json ship.
    const listed = await sh("tar", ["-tzf", tarball], work);
    const files = listed.stdout.trim().split("\n").sort();
    expect(files.every((f) => /^package\/(dist\/|README\.md$|package\.json$)/.test(f))).toBe(true);
  });

  it(
    "installs only the SDK, its dependencies and the peers (no server packages)",
    STEP,
    async () => {
      const modules = await readdir(join(consumer, "node_modules"));
      for (const forbidden of ["drizzle-orm", "postgres", "fastify", "lucia", "pino", "zod"]) {
        expect(modules).not.toContain(forbidden);
      }
    },
  );

  it(
    "(a)+(c) typechecks strictly with skipLibCheck false, including the no-any walk",
    STEP,
    async () => {
      const tsconfig = JSON.parse(await readFile(join(consumer, "tsconfig.json"), "utf8"));
      expect(tsconfig.compilerOptions.skipLibCheck).toBe(false);
      expect(tsconfig.compilerOptions.strict).toBe(true);
      const out = await sh(tsc, ["-p", "tsconfig.json"], consumer);
      expect(`${out.stdout}${out.stderr}`).toBe("");
      expect("code" in out).toBe(false);
    },
  );

  it(
    "(b) every @ts-expect-error is needed: removing them yields exactly that many errors",
    STEP,
    async () => {
      const file = join(consumer, "src", "types.ts");
      const source = await readFile(file, "utf8");
      const directives = source.match(/^\s*\/\/ @ts-expect-error/gm) ?? [];
      expect(directives.length).toBeGreaterThanOrEqual(3);
      const stripped = join(consumer, "src", "types-stripped.ts");
      await writeFile(
        stripped,
        source.replace(/^(\s*)\/\/ @ts-expect-error.*$/gm, "$1// (removed)"),
      );
      try {
        const out = await sh(
          tsc,
          ["-p", "tsconfig.json", "--noEmit", "--pretty", "false"],
          consumer,
        );
        const errors = out.stdout.split("\n").filter((l) => l.startsWith("src/types-stripped.ts("));
        // One error per removed directive (each guards exactly one line).
        expect(errors.length).toBe(directives.length);
      } finally {
        await rm(stripped);
      }
    },
  );

  it(
    "(d) signs in with TOTP, searches, lists slots, books and cancels, in plain node",
    STEP,
    async () => {
      // verifyFreshTotp checks the code against the injected clock: keep it on the wall clock.
      h.clock.now = new Date();
      const built = await sh(tsc, ["-p", "tsconfig.build.json"], consumer);
      expect(`${built.stdout}${built.stderr}`).toBe("");
      const search = await h.caller(c.staff.actor).patients.get({ patientId: c.patient.id });
      const from = new Date(Date.now() + 2 * 24 * 3600 * 1000);
      const out = await sh(process.execPath, ["out/live.js"], consumer, {
        HAVEN_URL: url,
        HAVEN_EMAIL: c.staff.email,
        HAVEN_PASSWORD: c.staff.password,
        HAVEN_TOTP: totpCode(sdkSecret, h.deps.now()),
        HAVEN_MRN: String(search.demographics.mrn),
        HAVEN_PRACTITIONER: c.practitionerId,
        HAVEN_FROM: from.toISOString(),
      });
      expect(out.stderr).toBe("");
      const line = JSON.parse(out.stdout.trim().split("\n").at(-1) ?? "{}");
      console.log(`[consumer] live: ${JSON.stringify(line)}`);
      expect(line).toMatchObject({
        role: "staff",
        patientId: c.patient.id,
        startsAtIsDate: true,
        bookedStatus: "booked",
        conflict: expect.any(String),
        cancelledStatus: "cancelled",
      });
    },
  );

  it(
    "openapi-fetch on generated types (no Haven types) signs in, finds a slot and books it",
    STEP,
    async () => {
      const source = await readFile(join(consumer, "src", "rest.ts"), "utf8");
      expect(source).not.toMatch(/from\s+["']@haven\//);
      const built = await sh(tsc, ["-p", "tsconfig.build.json"], consumer);
      expect(`${built.stdout}${built.stderr}`).toBe("");
      h.clock.now = new Date();
      const search = await h.caller(c.staff.actor).patients.get({ patientId: c.patient.id });
      const out = await sh(process.execPath, ["out/rest.js"], consumer, {
        HAVEN_URL: url,
        HAVEN_EMAIL: restUser.email,
        HAVEN_PASSWORD: restUser.password,
        HAVEN_TOTP: totpCode(restSecret, h.deps.now()),
        HAVEN_MRN: String(search.demographics.mrn),
        HAVEN_PRACTITIONER: c.practitionerId,
        HAVEN_FROM: new Date(Date.now() + 2 * 24 * 3600 * 1000).toISOString(),
      });
      expect(out.stderr).toBe("");
      const line = JSON.parse(out.stdout.trim().split("\n").at(-1) ?? "{}");
      console.log(`[consumer] openapi-fetch: ${JSON.stringify(line)}`);
      expect(line).toMatchObject({
        patientId: c.patient.id,
        bookedStatus: "booked",
        againStatus: 409,
        againCode: "CONFLICT",
      });
      expect(line.bookedStartsAt).toBe(line.slotStartsAt);
      expect(line.bookedStartsAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    },
  );

  it("attw and publint are clean on the tarball", STEP, async () => {
    const [attw, publint] = await Promise.all([
      // ESM-only package: the node16-from-CJS column is "dynamic import only" by design.
      sh(bin("attw"), [tarball, "--profile", "esm-only", "--format", "table-flipped"], work),
      sh(bin("publint"), [tarball, "--strict"], work),
    ]);
    console.log(`[consumer] attw:\n${attw.stdout}${attw.stderr}`);
    console.log(`[consumer] publint:\n${publint.stdout}${publint.stderr}`);
    expect("code" in attw).toBe(false);
    expect("code" in publint).toBe(false);
  });
});
