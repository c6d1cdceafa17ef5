import { randomBytes } from "node:crypto";
import { and, desc, eq } from "drizzle-orm";
import { apiKeys, users } from "../../db/schema/index.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import { API_KEY_PREFIX } from "../auth/api-key-credential.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, recordAudit } from "../kernel/audit.ts";
import { NotFoundError, ValidationError } from "../kernel/errors.ts";
import { sha256Hex as hashKey } from "../kernel/hash.ts";
import type { Actor, ApiKeyScope } from "../kernel/roles.ts";

/**
 * API keys: machine credentials for the reminder cron (ARCHITECTURE §4). A key is `hk_` + 256
 * random bits (base64url), shown once at creation; only its SHA-256 is stored (OWASP ASVS 2.10.x,
 * 3.5.2). Each key owns a `users` row of role `service` (no usable password), so audit rows keep a
 * user id; keys are named, scoped, revocable, optionally expiring, and record when last used.
 */
/** Marks a password hash that can never verify (argon2 rejects it as malformed). */
export const NO_PASSWORD = "!no-password";

/** An API key as admins see it: never the key or its hash. */
export interface ApiKeyInfo {
  id: string;
  name: string;
  prefix: string;
  scopes: ApiKeyScope[];
  userId: string;
  createdBy: string | null;
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
}

const INFO = {
  id: apiKeys.id,
  name: apiKeys.name,
  prefix: apiKeys.prefix,
  scopes: apiKeys.scopes,
  userId: apiKeys.userId,
  createdBy: apiKeys.createdBy,
  createdAt: apiKeys.createdAt,
  lastUsedAt: apiKeys.lastUsedAt,
  expiresAt: apiKeys.expiresAt,
  revokedAt: apiKeys.revokedAt,
};

/**
 * Create a `service` API key in an organization. Audited `auth.api_key_created` (no key in it).
 * @param input.createdBy the admin's user id (null from factories and CLIs)
 * @returns the raw key (shown once) and its public info
 * @throws ValidationError (`expires_in_past`) when `expiresAt` is not after now
 */
export async function createApiKey(
  deps: ServiceDeps,
  input: {
    organizationId: string;
    name: string;
    scopes: readonly ApiKeyScope[];
    createdBy: string | null;
    expiresAt?: Date | null;
  },
  audit: AuditActor | null,
): Promise<{ key: string; info: ApiKeyInfo }> {
  const id = uuidv7();
  const userId = uuidv7();
  const key = `${API_KEY_PREFIX}${randomBytes(32).toString("base64url")}`;
  const now = deps.now();
  if (input.expiresAt && input.expiresAt.getTime() <= now.getTime()) {
    throw new ValidationError("expiresAt must be in the future", "expires_in_past");
  }
  const serviceEmail = `service+${id}@keys.haven.invalid`;
  const info = await deps.db.transaction(async (tx) => {
    await tx.insert(users).values({
      id: userId,
      organizationId: input.organizationId,
      role: "service",
      emailIndex: deps.crypto.index("user.email", serviceEmail),
      email: deps.crypto.seal("users", "email", userId, serviceEmail),
      passwordHash: NO_PASSWORD,
    });
    const [row] = await tx
      .insert(apiKeys)
      .values({
        id,
        organizationId: input.organizationId,
        userId,
        name: input.name,
        prefix: key.slice(0, 9),
        keyHash: hashKey(key),
        scopes: [...new Set(input.scopes)],
        createdBy: input.createdBy,
        createdAt: now,
        expiresAt: input.expiresAt ?? null,
      })
      .returning(INFO);
    if (audit) {
      await recordAudit(
        tx,
        audit,
        {
          action: "auth.api_key_created",
          outcome: "allowed",
          resourceType: "ApiKey",
          resourceId: id,
          details: { scopes: input.scopes.join(","), serviceUserId: userId },
        },
        now,
      );
    }
    return row as ApiKeyInfo;
  });
  return { key, info };
}

/** An organization's API keys, newest first (revoked ones included, marked). */
export async function listApiKeys(
  deps: ServiceDeps,
  organizationId: string,
): Promise<ApiKeyInfo[]> {
  const rows = await deps.db
    .select(INFO)
    .from(apiKeys)
    .where(eq(apiKeys.organizationId, organizationId))
    .orderBy(desc(apiKeys.createdAt));
  return rows as ApiKeyInfo[];
}

/**
 * Revoke a key of the caller's organization (idempotent); the key stops working at once.
 * Audited `auth.api_key_revoked`. @throws NotFoundError (unknown or another organization's key)
 */
export async function revokeApiKey(
  deps: ServiceDeps,
  organizationId: string,
  keyId: string,
  audit: AuditActor,
): Promise<void> {
  const now = deps.now();
  await deps.db.transaction(async (tx) => {
    const [row] = await tx
      .select({ id: apiKeys.id, revokedAt: apiKeys.revokedAt })
      .from(apiKeys)
      .where(and(eq(apiKeys.id, keyId), eq(apiKeys.organizationId, organizationId)))
      .limit(1);
    if (!row) throw new NotFoundError("No such API key");
    if (!row.revokedAt) {
      await tx.update(apiKeys).set({ revokedAt: now }).where(eq(apiKeys.id, keyId));
    }
    await recordAudit(
      tx,
      audit,
      {
        action: "auth.api_key_revoked",
        outcome: "allowed",
        resourceType: "ApiKey",
        resourceId: keyId,
        details: { alreadyRevoked: row.revokedAt !== null },
      },
      now,
    );
  });
}

/**
 * Issue a `service` key in the admin's own organization ({@link createApiKey}), recorded as
 * created by that admin. @returns the raw key (shown once) and its public info
 */
export function issueApiKey(
  deps: ServiceDeps,
  admin: Actor,
  audit: AuditActor,
  input: { name: string; scopes: readonly ApiKeyScope[]; expiresAt?: Date | undefined },
): Promise<{ key: string; info: ApiKeyInfo }> {
  return createApiKey(
    deps,
    {
      organizationId: admin.organizationId,
      name: input.name,
      scopes: input.scopes,
      createdBy: admin.userId,
      expiresAt: input.expiresAt ?? null,
    },
    audit,
  );
}
