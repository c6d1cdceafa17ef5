import { chmod, mkdir, readdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { asc, count, eq } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { careRelationships, patients, practitioners, users } from "../../db/schema/index.ts";
import { createUser } from "../auth/login.ts";
import type { ServiceDeps } from "../deps.ts";
import { type ImportSummary, importFiles } from "../fhir/importer.ts";
import { isPrivileged, type Role } from "../kernel/roles.ts";
import { enrolTotpDirectly, totpUri } from "../mfa/service.ts";
import { seedDemoHours } from "../scheduling/service.ts";

/** The Synthea bundles shipped in the repo (synthetic, Apache-2.0). */
export const DEMO_BUNDLE_DIR = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../../db/seed/synthea",
);

/** FHIR id of the (synthetic) patient the demo portal account is linked to: the first shipped bundle. */
export const DEMO_PATIENT_FHIR_ID = "475d72ca-91c7-7211-97e3-f000af33fc04";

/**
 * The synthetic e-mail address a demo patient gets (Synthea emits phone numbers only): on
 * example.org (RFC 2606, reserved: never anyone's mailbox), derived from the FHIR id, so
 * `npm run reminders` against the demo has somewhere to deliver (the log transport without
 * HAVEN_SMTP_URL).
 */
export function demoEmailAddress(fhirId: string): string {
  return `demo-patient-${fhirId.slice(0, 8).toLowerCase()}@example.org`;
}

/**
 * `importFiles` `prepare` hook: gives every Patient resource of a shipped Synthea bundle that has
 * no e-mail in `telecom` the address {@link demoEmailAddress}. Demo seeding only; the files on disk
 * stay as Synthea wrote them.
 */
export function withDemoEmailAddresses(bundle: unknown): unknown {
  const entries = (bundle as { entry?: unknown } | null)?.entry;
  if (!Array.isArray(entries)) return bundle;
  for (const entry of entries) {
    const resource = (entry as { resource?: Record<string, unknown> } | null)?.resource;
    if (resource?.resourceType !== "Patient" || typeof resource.id !== "string") continue;
    const telecom = Array.isArray(resource.telecom) ? resource.telecom : [];
    if (telecom.some((t) => (t as { system?: unknown } | null)?.system === "email")) continue;
    resource.telecom = [
      ...telecom,
      { system: "email", value: demoEmailAddress(resource.id), use: "home" },
    ];
  }
  return bundle;
}

export interface DemoLogin {
  role: Role;
  email: string;
  password: string;
  note: string;
}

/**
 * Demo credentials for the embedded default only (synthetic data, loopback by default). Printed at
 * startup and listed in the README; never created unless HAVEN_DEMO allows it.
 */
export const DEMO_LOGINS: DemoLogin[] = [
  {
    role: "admin",
    email: "admin@haven.demo",
    password: "demo-admin-passphrase",
    note: "clinic admin",
  },
  {
    role: "staff",
    email: "staff@haven.demo",
    password: "demo-staff-passphrase",
    note: "front desk",
  },
  {
    role: "clinician",
    email: "clinician@haven.demo",
    password: "demo-clinician-passphrase",
    note: "linked to an imported Practitioner who treats the demo patient",
  },
  {
    role: "patient",
    email: "patient@haven.demo",
    password: "demo-patient-passphrase",
    note: "portal account linked to an imported Synthea patient",
  },
];

/** A demo account's TOTP enrolment (privileged demo roles must pass MFA before PHI). */
export interface DemoTotp {
  role: Role;
  email: string;
  /** base32 secret: `npm run totp -- <secret>` prints the current code. */
  secret: string;
  /** otpauth:// URI for authenticator apps. */
  uri: string;
}

export interface DemoSeedResult {
  seeded: boolean;
  importSummary?: ImportSummary;
  patientId?: string;
  /** TOTP secrets of the admin, staff and clinician demo accounts (first start only). */
  totp?: DemoTotp[];
  /** Where the logins and TOTP secrets were written (mode 0600), when a file was asked for. */
  loginsFile?: string;
}

/**
 * Write the demo logins and TOTP secrets to `file` with mode 0600, so a newcomer finds them after
 * the first start's console output is gone. Synthetic demo accounts only.
 */
export async function writeDemoLoginsFile(file: string, totp: DemoTotp[]): Promise<void> {
  const lines = [
    "# Haven demo logins (synthetic data; embedded demo only). Keep this file private.",
    "# Privileged accounts need a TOTP code after the password: `npm run totp -- <secret>`",
    "# or scan the otpauth URI with any authenticator app.",
    "",
  ];
  for (const l of DEMO_LOGINS) {
    const t = totp.find((x) => x.role === l.role);
    lines.push(`${l.role.padEnd(9)} ${l.email.padEnd(22)} ${l.password}`);
    if (t) lines.push(`          totp secret ${t.secret}`, `          ${t.uri}`);
  }
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${lines.join("\n")}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
}

/**
 * Load the shipped Synthea bundles and create the demo accounts, when the database has no users
 * yet (idempotent: a second start does nothing).
 */
export async function seedDemo(
  deps: ServiceDeps & { db: Database },
  options: { loginsFile?: string } = {},
): Promise<DemoSeedResult> {
  const [existing] = await deps.db.select({ n: count() }).from(users);
  if ((existing?.n ?? 0) > 0) return { seeded: false };

  const files = (await readdir(DEMO_BUNDLE_DIR))
    .filter((f) => f.endsWith(".json"))
    .map((f) => join(DEMO_BUNDLE_DIR, f));
  const importSummary = await importFiles(deps, files, {
    operator: "haven demo seed",
    prepare: withDemoEmailAddresses,
  });

  const [patient] = await deps.db
    .select({ id: patients.id, organizationId: patients.organizationId })
    .from(patients)
    .where(eq(patients.fhirId, deps.crypto.patientFhirId(DEMO_PATIENT_FHIR_ID)))
    .limit(1);
  if (!patient) throw new Error("demo patient missing after import");
  const [care] = await deps.db
    .select({ practitionerId: careRelationships.practitionerId })
    .from(careRelationships)
    .where(eq(careRelationships.patientId, patient.id))
    .orderBy(asc(careRelationships.validFrom))
    .limit(1);
  if (!care) throw new Error("demo patient has no care relationship after import");

  const ids = new Map<Role, string>();
  for (const login of DEMO_LOGINS) {
    ids.set(
      login.role,
      await createUser(deps, {
        email: login.email,
        password: login.password,
        role: login.role,
        organizationId: patient.organizationId,
      }),
    );
  }
  await deps.db
    .update(patients)
    .set({ userId: ids.get("patient") ?? null })
    .where(eq(patients.id, patient.id));
  await deps.db
    .update(practitioners)
    .set({ userId: ids.get("clinician") ?? null })
    .where(eq(practitioners.id, care.practitionerId));
  await seedDemoHours(deps.db, care.practitionerId);
  const totp: DemoTotp[] = [];
  for (const login of DEMO_LOGINS) {
    const userId = ids.get(login.role);
    if (!userId || !isPrivileged(login.role)) continue;
    const secret = await enrolTotpDirectly(deps, userId);
    totp.push({ role: login.role, email: login.email, secret, uri: totpUri(secret, login.email) });
  }
  if (options.loginsFile) await writeDemoLoginsFile(options.loginsFile, totp);
  return {
    seeded: true,
    importSummary,
    patientId: patient.id,
    totp,
    ...(options.loginsFile ? { loginsFile: options.loginsFile } : {}),
  };
}
