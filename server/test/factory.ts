import { randomBytes } from "node:crypto";
import { v7 as uuidv7 } from "uuid";
import { createHavenClient } from "../../client-sdk/index.ts";
import type { Database } from "../../db/client.ts";
import {
  careRelationships,
  organizations,
  patients,
  practitioners,
} from "../../db/schema/index.ts";
import { createApiKey } from "../accounts/api-keys.ts";
import { createUser } from "../auth/login.ts";
import { hashSessionToken, type SessionManager } from "../auth/session.ts";
import type { PhiCrypto } from "../crypto/phi.ts";
import type { ServiceDeps } from "../deps.ts";
import type { Demographics } from "../kernel/demographics.ts";
import { API_KEY_SCOPES, type ApiKeyScope, type Role } from "../kernel/roles.ts";

/** Test data builders that write through the same crypto as production code. */
export type Deps = ServiceDeps & { db: Database; crypto: PhiCrypto };

const suffix = () => randomBytes(4).toString("hex");

export async function makeOrganization(deps: Deps, name = `Clinic ${suffix()}`): Promise<string> {
  const id = uuidv7();
  await deps.db.insert(organizations).values({ id, name, timezone: "America/New_York" });
  return id;
}

export function sampleDemographics(overrides: Partial<Demographics> = {}): Demographics {
  const tag = suffix();
  return {
    name: { family: `Family${tag}`, given: [`Given${tag}`], prefix: [], suffix: [] },
    birthDate: "1980-02-29",
    sex: "female",
    phone: `555-${tag.slice(0, 3)}-0101`,
    email: `p${tag}@example.test`,
    address: {
      line: ["1 Main St"],
      city: "Boston",
      state: "MA",
      postalCode: "02110",
      country: "US",
    },
    ssn: `999-${tag.slice(0, 2)}-0001`,
    mrn: `MRN-${tag}`,
    deceased: null,
    ...overrides,
  };
}

export async function makePatient(
  deps: Deps,
  organizationId: string,
  demographics: Demographics = sampleDemographics(),
): Promise<{ id: string; demographics: Demographics }> {
  const id = uuidv7();
  await deps.db.insert(patients).values({
    id,
    organizationId,
    demographics: deps.crypto.seal("patients", "demographics", id, demographics),
    mrnIndex: demographics.mrn ? deps.crypto.index("patient.mrn", demographics.mrn) : null,
    emailIndex: demographics.email ? deps.crypto.index("patient.email", demographics.email) : null,
    familyBirthIndex: demographics.birthDate
      ? deps.crypto.familyBirth(demographics.name.family, demographics.birthDate)
      : null,
  });
  return { id, demographics };
}

export async function makePractitioner(
  deps: Deps,
  organizationId: string,
  userId: string | null = null,
): Promise<string> {
  const id = uuidv7();
  await deps.db
    .insert(practitioners)
    .values({ id, organizationId, name: `Dr. Test ${suffix()}`, userId });
  return id;
}

export async function linkCare(
  deps: Deps,
  organizationId: string,
  patientId: string,
  practitionerId: string,
  validTo: Date | null = null,
): Promise<void> {
  await deps.db.insert(careRelationships).values({
    id: uuidv7(),
    organizationId,
    patientId,
    practitionerId,
    source: "assignment",
    validFrom: new Date("2000-01-01T00:00:00Z"),
    validTo,
  });
}

export interface TestUser {
  userId: string;
  email: string;
  password: string;
  role: Role;
  organizationId: string;
}

export async function makeUser(deps: Deps, role: Role, organizationId: string): Promise<TestUser> {
  const email = `${role}-${suffix()}@haven.test`;
  const password = `correct horse ${suffix()} battery`;
  const userId = await createUser(deps, { email, password, role, organizationId });
  return { userId, email, password, role, organizationId };
}

/**
 * Sign a user in over HTTP (`auth.login` through the SDK) and complete MFA for that session, the
 * way a clinician does after typing a TOTP code; returns the bearer token. The password step is the
 * real one; the MFA step marks the session verified through `SessionManager.markMfaVerified` (the
 * call `auth.mfa.verify` makes after checking a code), so tests can sign the same user in many
 * times without running into TOTP replay protection. Works for any role (patients need no MFA).
 */
export async function loginWithMfa(
  h: { services: { sessions: SessionManager } },
  url: string,
  user: { email: string; password: string },
): Promise<string> {
  const { token } = await createHavenClient({ url }).auth.login.mutate({
    email: user.email,
    password: user.password,
  });
  await h.services.sessions.markMfaVerified(hashSessionToken(token));
  return token;
}

/**
 * A `service` API key for an organization (what the reminder cron uses), created through the same
 * service as `auth.apiKeys.create`. Use it as `createHavenClient({ url, token: key })`.
 * @param scopes defaults to every scope
 * @returns the raw key, its id and the service user's id
 */
export async function makeServiceApiKey(
  deps: Deps,
  organizationId: string,
  scopes: readonly ApiKeyScope[] = API_KEY_SCOPES,
): Promise<{ key: string; keyId: string; userId: string }> {
  const { key, info } = await createApiKey(
    deps,
    { organizationId, name: `test key ${suffix()}`, scopes, createdBy: null },
    null,
  );
  return { key, keyId: info.id, userId: info.userId };
}
