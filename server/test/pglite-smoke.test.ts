import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { type RunningHaven, startHaven } from "../app.ts";
import { loadConfig } from "../config.ts";
import { DEMO_LOGINS } from "../demo/seed.ts";
import { totpCode } from "../mfa/service.ts";
import { LogSink } from "./harness.ts";

/**
 * Smoke suite on the embedded default (PGlite): what `npm start` does on a fresh machine —
 * generate a key file, migrate, import the shipped Synthea bundles, create demo accounts, serve.
 */
let dir: string;
let haven: RunningHaven | undefined;
const logs = new LogSink();

function config() {
  return loadConfig({
    HAVEN_DATA_DIR: dir,
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "info",
    NODE_ENV: "test",
  });
}

let firstTotp: RunningHaven["demo"]["totp"];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "haven-pglite-"));
  haven = await startHaven(config(), { logDestination: logs });
  firstTotp = haven.demo.totp;
}, 180_000);
afterAll(async () => {
  await haven?.close();
  await rm(dir, { recursive: true, force: true });
});

const login = (role: string) => {
  const l = DEMO_LOGINS.find((d) => d.role === role);
  if (!l) throw new Error(role);
  return l;
};

describe("embedded PGlite mode", () => {
  it("generated a 0600 key file and loaded the demo data", async () => {
    if (!haven) throw new Error("not started");
    expect(haven.database.kind).toBe("pglite");
    expect(haven.keysGenerated).toBe(true);
    expect(((await stat(join(dir, "keys.json"))).mode & 0o777).toString(8)).toBe("600");
    expect(haven.demo.seeded).toBe(true);
    expect(haven.demo.importSummary?.created.Patient).toBe(7);
  });

  it("is ready, and a demo patient logs in through the SDK and reads their own record", async () => {
    if (!haven) throw new Error("not started");
    expect((await fetch(`${haven.url}/readyz`)).status).toBe(200);
    const p = login("patient");
    const { token } = await createHavenClient({ url: haven.url }).auth.login.mutate({
      email: p.email,
      password: p.password,
    });
    const client = createHavenClient({ url: haven.url, token });
    const me = await client.auth.me.query();
    expect(me.user.patientId).toBeTruthy();
    const record = await client.patients.get.query({ patientId: me.user.patientId ?? "" });
    expect(record.demographics.name.family).toBe("Schowalter414");
    expect(record.entries.length).toBeGreaterThan(10);
    const appts = await client.appointments.listForPatient.query({
      patientId: me.user.patientId ?? "",
    });
    expect(appts.items.length).toBeGreaterThan(0);
  });

  /** Password, then the TOTP code from the demo secret (what a newcomer does with `npm run totp`). */
  async function signInWithTotp(role: "staff" | "clinician" | "admin") {
    if (!haven) throw new Error("not started");
    const anon = createHavenClient({ url: haven.url });
    const first = await anon.auth.login.mutate({
      email: login(role).email,
      password: login(role).password,
    });
    expect(first.mfa).toBe("verify");
    const secret = haven.demo.totp?.find((t) => t.role === role)?.secret ?? "";
    const { token } = await createHavenClient({
      url: haven.url,
      token: first.token,
    }).auth.mfa.verify.mutate({ code: totpCode(secret) });
    return createHavenClient({ url: haven.url, token });
  }

  it("enrolled the privileged demo accounts in TOTP and wrote their secrets to a 0600 file", async () => {
    if (!haven) throw new Error("not started");
    expect(haven.demo.totp?.map((t) => t.role).sort()).toEqual(["admin", "clinician", "staff"]);
    const file = join(dir, "demo-logins.txt");
    expect(haven.demo.loginsFile).toBe(file);
    expect(((await stat(file)).mode & 0o777).toString(8)).toBe("600");
    const text = await readFile(file, "utf8");
    for (const t of haven.demo.totp ?? []) {
      expect(text).toContain(t.secret);
      expect(t.uri).toMatch(/^otpauth:\/\/totp\/Haven:/);
    }
    // without the code, a privileged demo login may not read PHI
    const { token } = await createHavenClient({ url: haven.url }).auth.login.mutate({
      email: login("staff").email,
      password: login("staff").password,
    });
    await expect(
      createHavenClient({ url: haven.url, token }).patients.search.query({ mrn: "x" }),
    ).rejects.toMatchObject({ data: { code: "FORBIDDEN", reason: "mfa_required" } });
  });

  it("the demo clinician sees the demo patient; staff find them by family name + birth date", async () => {
    if (!haven) throw new Error("not started");
    const staff = await signInWithTotp("staff");
    const found = await staff.patients.search.query({
      family: "Schowalter414",
      birthDate: "2009-04-29",
    });
    expect(found).toHaveLength(1);
    const clinician = await signInWithTotp("clinician");
    const rec = await clinician.patients.get.query({ patientId: found[0]?.id ?? "" });
    expect(rec.entries.some((e) => e.resource !== undefined)).toBe(true);
  });

  it("a restart on the same directory keeps the data and does not seed twice", async () => {
    await haven?.close();
    haven = await startHaven(config(), { logDestination: logs });
    expect(haven.keysGenerated).toBe(false);
    expect(haven.demo.seeded).toBe(false);
    const p = login("patient");
    const { token } = await createHavenClient({ url: haven.url }).auth.login.mutate({
      email: p.email,
      password: p.password,
    });
    expect(token).toBeTruthy();
  }, 120_000);

  it("logged no PHI while importing and serving", () => {
    const text = logs.text();
    expect(text.length).toBeGreaterThan(0);
    for (const needle of [
      "Schowalter414",
      "Bibi254",
      "555-259-9533",
      "999-97-5872",
      "patient@haven.demo",
      ...(firstTotp ?? []).map((t) => t.secret),
    ]) {
      expect(text).not.toContain(needle);
    }
  });
});
