import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient, isHavenError } from "../../client-sdk/index.ts";
import { auditChain, auditEvents } from "../../db/schema/index.ts";
import { type RunningHaven, startHaven } from "../app.ts";
import { CHANGES_CHANNEL } from "../appointments/changes.ts";
import { loadConfig } from "../config.ts";
import { DEMO_BUNDLE_DIR, DEMO_LOGINS, withDemoEmailAddresses } from "../demo/seed.ts";
import { totpCode } from "../mfa/service.ts";
import { createTestDatabase, type TestDatabase } from "./db.ts";
import { makePatient, sampleDemographics } from "./factory.ts";
import { LogSink } from "./harness.ts";

/**
 * No PHI outside ciphertext (ARCHITECTURE §3, §7): with the server logging at DEBUG, import every
 * Synthea fixture through the real start-up path (demo seed), then sign in and read, search,
 * export, book, break the glass and provoke refusals over HTTP. No fixture family or given name,
 * phone, e-mail, SSN, MRN or birth date may appear in the log output, in any audit row, in any NOTIFY
 * payload, or in any error returned to a client.
 */
interface Needles {
  values: string[];
  patientFamily: string;
  patientBirthDate: string;
}

function fixtureNeedles(): Needles {
  const values = new Set<string>();
  let patientFamily = "";
  let patientBirthDate = "";
  for (const file of readdirSync(DEMO_BUNDLE_DIR).filter((f) => f.endsWith(".json"))) {
    // As the demo seed imports it: with the synthetic e-mail addresses added.
    const bundle = withDemoEmailAddresses(
      JSON.parse(readFileSync(join(DEMO_BUNDLE_DIR, file), "utf8")),
    ) as {
      entry: { resource: Record<string, unknown> }[];
    };
    for (const { resource } of bundle.entry) {
      if (resource.resourceType !== "Patient") continue;
      const r = resource as {
        name?: { family?: string; given?: string[] }[];
        telecom?: { system?: string; value?: string }[];
        identifier?: { system?: string; value?: string; type?: { coding?: { code?: string }[] } }[];
        birthDate?: string;
        address?: { line?: string[] }[];
      };
      for (const n of r.name ?? []) {
        if (n.family) values.add(n.family);
        for (const g of n.given ?? []) values.add(g);
      }
      for (const t of r.telecom ?? []) if (t.value) values.add(t.value);
      for (const i of r.identifier ?? []) {
        if (i.system === "http://hl7.org/fhir/sid/us-ssn" && i.value) values.add(i.value);
        if (i.type?.coding?.some((c) => c.code === "MR") && i.value) values.add(i.value);
      }
      for (const a of r.address ?? []) for (const l of a.line ?? []) values.add(l);
      if (r.birthDate) values.add(r.birthDate);
      if (file.startsWith("Bibi254_Schowalter414")) {
        patientFamily = r.name?.[0]?.family ?? "";
        patientBirthDate = r.birthDate ?? "";
      }
    }
  }
  return { values: [...values], patientFamily, patientBirthDate };
}

const needles = fixtureNeedles();
const found = (text: string) =>
  needles.values.filter((n) => text.toLowerCase().includes(n.toLowerCase()));

let testDb: TestDatabase;
let haven: RunningHaven | undefined;
let dataDir: string;
const logs = new LogSink();
const clock = { now: new Date() };
const notifications: string[] = [];
const errors: string[] = [];
let stopListening: (() => Promise<void>) | undefined;

beforeAll(async () => {
  testDb = await createTestDatabase({ maxConnections: 8 });
  dataDir = await mkdtemp(join(tmpdir(), "haven-nophi-"));
  const config = loadConfig({
    NODE_ENV: "test",
    DATABASE_URL: testDb.url,
    HAVEN_PHI_KEYS: `k1:${randomBytes(32).toString("base64")}`,
    HAVEN_BLIND_INDEX_KEY: randomBytes(32).toString("base64"),
    HAVEN_DATA_DIR: dataDir,
    HAVEN_DEMO: "true",
    HAVEN_MIGRATE_ON_START: "false",
    HAVEN_AUDIT_SEAL_INTERVAL_MS: "50",
    LOG_LEVEL: "debug",
    HOST: "127.0.0.1",
    PORT: "0",
  });
  stopListening = await testDb.handle.listen(CHANGES_CHANNEL, (payload) =>
    notifications.push(payload),
  );
  haven = await startHaven(config, {
    logDestination: logs,
    database: testDb.handle,
    now: () => new Date(clock.now),
  });
}, 180_000);
afterAll(async () => {
  await stopListening?.();
  await haven?.close();
  await testDb?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function signIn(role: string): Promise<string> {
  if (!haven) throw new Error("not started");
  const login = DEMO_LOGINS.find((l) => l.role === role);
  if (!login) throw new Error(role);
  const { token } = await createHavenClient({ url: haven.url }).auth.login.mutate({
    email: login.email,
    password: login.password,
  });
  const totp = haven.demo.totp?.find((t) => t.role === role);
  if (!totp) return token;
  clock.now = new Date(clock.now.getTime() + 30_000);
  const verified = await createHavenClient({ url: haven.url, token }).auth.mfa.verify.mutate({
    code: totpCode(totp.secret, clock.now),
  });
  return verified.token;
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (!isHavenError(err)) throw err;
    errors.push(JSON.stringify({ message: err.message, data: err.data, shape: err.shape }));
    return err.data?.code ?? "?";
  }
  throw new Error("expected a refusal");
}

describe("no PHI outside ciphertext", () => {
  it("imports every fixture at DEBUG level and serves reads, searches, exports, bookings and refusals", async () => {
    if (!haven) throw new Error("not started");
    expect(haven.demo.seeded).toBe(true);
    expect(haven.demo.importSummary?.created.Patient).toBe(7);
    expect(needles.values.length).toBeGreaterThan(40);
    const url = haven.url;

    const patient = createHavenClient({ url, token: await signIn("patient") });
    const me = await patient.auth.me.query();
    const patientId = me.user.patientId as string;
    const record = await patient.patients.get.query({ patientId });
    expect(record.demographics.name.family).toBe(needles.patientFamily);
    await patient.appointments.listForPatient.query({ patientId });
    const bundle = await patient.patients.exportMyRecord.query();
    expect(bundle.entry.length).toBeGreaterThan(20);
    await patient.audit.forPatient.query({ patientId });

    const staff = createHavenClient({ url, token: await signIn("staff") });
    const hits = await staff.patients.search.query({
      family: needles.patientFamily,
      birthDate: needles.patientBirthDate,
    });
    expect(hits.map((h) => h.id)).toEqual([patientId]);
    await staff.patients.get.query({ patientId });
    expect(
      await refusal(
        staff.patients.search.query({ family: needles.patientFamily, birthDate: "31-12-2009" }),
      ),
    ).toBe("BAD_REQUEST");

    const clinician = createHavenClient({ url, token: await signIn("clinician") });
    const who = await clinician.auth.me.query();
    const practitionerId = who.user.practitionerId as string;
    // A booking sends a NOTIFY; its visit reason names the patient (PHI) and must stay sealed.
    const admin = createHavenClient({ url, token: await signIn("admin") });
    const startsAt = new Date(Date.UTC(2035, 0, 10, 15, 0));
    await admin.appointments.book.mutate({
      practitionerId,
      patientId,
      startsAt,
      endsAt: new Date(startsAt.getTime() + 30 * 60_000),
      reason: `Follow-up for ${needles.patientFamily} born ${needles.patientBirthDate}`,
      override: { reason: `Requested by ${needles.patientFamily}'s family` },
    });
    // Break the glass on a patient of the clinic the clinician does not treat, with a reason that
    // names a fixture patient (free text is PHI: it is sealed, never logged or audited).
    const stranger = await makePatient(
      haven.services.deps,
      who.user.organizationId,
      sampleDemographics(),
    );
    expect(await refusal(clinician.patients.get.query({ patientId: stranger.id }))).toBe(
      "FORBIDDEN",
    );
    expect(await refusal(patient.patients.get.query({ patientId: stranger.id }))).toBe("FORBIDDEN");
    clock.now = new Date(clock.now.getTime() + 30_000);
    const totp = haven.demo.totp?.find((t) => t.role === "clinician");
    await clinician.access.breakGlass.mutate({
      patientId: stranger.id,
      reason: `Relative of ${needles.patientFamily} collapsed; call ${needles.values.find((v) => /^555-/.test(v)) ?? ""}`,
      code: totpCode(totp?.secret as string, clock.now),
    });
    await clinician.patients.get.query({ patientId: stranger.id });
    await admin.audit.breakGlassReview.query({});
    await refusal(
      createHavenClient({ url }).auth.login.mutate({
        email: "nobody@haven.demo",
        password: needles.patientFamily.repeat(2),
      }),
    );

    // Let the background sealer run (it logs chain heads).
    for (let i = 0; i < 100 && !logs.text().includes("audit chain sealed"); i++) await sleep(20);
  }, 120_000);

  it("the DEBUG log holds no fixture name, phone, SSN, MRN, address or birth date", () => {
    const text = logs.text();
    expect(logs.lines.length).toBeGreaterThan(20);
    expect(text).toContain("audit chain sealed");
    expect(text).toContain("break-the-glass access granted");
    expect(found(text)).toEqual([]);
    // The detector itself works (case-insensitive), so an empty result means something.
    expect(found(`{"x":"${needles.patientFamily.toUpperCase()}"}`)).toContain(
      needles.patientFamily,
    );
  });

  it("no audit row holds PHI (ids and codes only)", async () => {
    const rows = await testDb.handle.db.select().from(auditEvents);
    expect(rows.length).toBeGreaterThan(20);
    expect(rows.some((r) => r.action === "access.break_glass" && r.outcome === "allowed")).toBe(
      true,
    );
    expect(found(JSON.stringify(rows))).toEqual([]);
    expect(found(JSON.stringify(await testDb.handle.db.select().from(auditChain)))).toEqual([]);
  });

  it("no NOTIFY payload and no error returned to a client holds PHI", () => {
    expect(notifications.length).toBeGreaterThan(0);
    expect(found(notifications.join("\n"))).toEqual([]);
    expect(errors.length).toBeGreaterThanOrEqual(3);
    expect(found(errors.join("\n"))).toEqual([]);
  });
});
