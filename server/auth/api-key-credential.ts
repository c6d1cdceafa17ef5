import { and, eq, isNull, lt, or } from "drizzle-orm";
import { apiKeys, users } from "../../db/schema/index.ts";
import type { ServiceDeps } from "../deps.ts";
import { sha256Hex as hashKey } from "../kernel/hash.ts";
import type { Actor, ApiKeyScope } from "../kernel/roles.ts";

/**
 * Authenticating a presented API key (the reminder cron's credential, ARCHITECTURE §4). Issuing,
 * listing and revoking keys is account administration and lives in `accounts/api-keys.ts`; this
 * file only answers "which `service` actor is this bearer?", so authentication needs nothing from
 * the accounts domain. A key is `hk_` + 256 random bits (base64url); only its SHA-256 is stored.
 */
export const API_KEY_PREFIX = "hk_";
const KEY_SHAPE = /^hk_[A-Za-z0-9_-]{43}$/;
/** `last_used_at` is written at most this often (ms). */
const LAST_USED_INTERVAL_MS = 60_000;

/** True when a bearer credential looks like an API key (vs a session token). */
export function isApiKey(credential: string): boolean {
  return credential.startsWith(API_KEY_PREFIX);
}

/**
 * Resolve a raw API key to its `service` actor; null when unknown, revoked, expired or its
 * service user is disabled. Updates `last_used_at` (at most once a minute).
 */
export async function resolveApiKey(deps: ServiceDeps, key: string): Promise<Actor | null> {
  if (!KEY_SHAPE.test(key)) return null;
  const now = deps.now();
  const [row] = await deps.db
    .select({
      id: apiKeys.id,
      userId: apiKeys.userId,
      organizationId: apiKeys.organizationId,
      scopes: apiKeys.scopes,
      lastUsedAt: apiKeys.lastUsedAt,
      revokedAt: apiKeys.revokedAt,
      expiresAt: apiKeys.expiresAt,
      disabledAt: users.disabledAt,
      role: users.role,
    })
    .from(apiKeys)
    .innerJoin(users, eq(users.id, apiKeys.userId))
    .where(eq(apiKeys.keyHash, hashKey(key)))
    .limit(1);
  if (!row || row.revokedAt || row.disabledAt || row.role !== "service") return null;
  if (row.expiresAt && row.expiresAt.getTime() <= now.getTime()) return null;
  if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() >= LAST_USED_INTERVAL_MS) {
    await deps.db
      .update(apiKeys)
      .set({ lastUsedAt: now })
      .where(
        and(eq(apiKeys.id, row.id), or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, now))),
      );
  }
  return {
    userId: row.userId,
    role: "service",
    organizationId: row.organizationId,
    sessionId: `apikey:${row.id}`,
    patientId: null,
    practitionerId: null,
    apiKeyId: row.id,
    scopes: row.scopes as ApiKeyScope[],
  };
}
