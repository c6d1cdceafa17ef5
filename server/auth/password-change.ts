import { randomBytes } from "node:crypto";
import { and, eq, isNull, ne } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { passwordResetTokens, users } from "../../db/schema/index.ts";
import type { MailTransport } from "../../lib/mail.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, auditDenial, recordAudit } from "../kernel/audit.ts";
import { ForbiddenError, TooManyRequestsError, UnauthorizedError } from "../kernel/errors.ts";
import { sha256Hex as sha256 } from "../kernel/hash.ts";
import type { Actor } from "../kernel/roles.ts";
import { passwordContextFor } from "./login.ts";
import {
  assertPasswordAcceptable,
  hashPassword,
  PasswordPolicyError,
  verifyPassword,
} from "./password-hashing.ts";
import type { SessionManager } from "./session.ts";
import { keysFor, reserve, THROTTLE_LIMITS } from "./throttle.ts";

/**
 * Password change and reset (OWASP ASVS 2.1.x, 2.5.x; NIST SP 800-63B §5.1.1.2, §6.1.2.3).
 * Reset tokens: 256 random bits, e-mailed through the mail transport, stored as SHA-256 only,
 * single use, valid 30 minutes; a reset revokes every session of the account.
 */
export const RESET_TOKEN_TTL_MINUTES = 30;
const INVALID_RESET = "This reset link is invalid or has expired";

/**
 * Change the signed-in user's password. The current password is re-checked (and a wrong one counts
 * against the login throttle of the account); the new one must pass the NIST rules and differ from
 * the current one. Every OTHER session of the account is revoked (ASVS 3.3.3). Audited
 * `auth.password_changed` (allowed or denied).
 * @throws ForbiddenError `invalid_credentials`, PasswordPolicyError (`newPassword`), TooManyRequestsError
 */
export async function changePassword(
  deps: ServiceDeps & { db: Database },
  sessionsManager: SessionManager,
  actor: Actor,
  audit: AuditActor,
  input: { currentPassword: string; newPassword: string },
): Promise<{ otherSessionsRevoked: number }> {
  const now = deps.now();
  const [u] = await deps.db
    .select({ passwordHash: users.passwordHash, emailIndex: users.emailIndex })
    .from(users)
    .where(eq(users.id, actor.userId))
    .limit(1);
  if (!u) throw new UnauthorizedError("No such account");
  const reservation = await reserve(deps.db, now, keysFor("login", u.emailIndex, audit.ip));
  if (reservation.blocked) {
    throw new TooManyRequestsError(
      "Too many failed attempts; wait before trying again",
      reservation.blocked.retryAfterSeconds,
    );
  }
  if (!(await verifyPassword(u.passwordHash, input.currentPassword))) {
    throw await auditDenial(
      deps.db,
      audit,
      {
        action: "auth.password_changed",
        resourceType: "User",
        resourceId: actor.userId,
        details: {
          reason: "bad_current_password",
          failuresInWindow: reservation.counts[0] ?? 0,
          limit: THROTTLE_LIMITS.login.account.max,
        },
      },
      new ForbiddenError("The current password is not correct", "invalid_credentials"),
      now,
    );
  }
  await reservation.succeed(["account"]);
  const ctx = await passwordContextFor(deps, actor.userId);
  assertPasswordAcceptable(input.newPassword, ctx, "newPassword");
  if (await verifyPassword(u.passwordHash, input.newPassword)) {
    throw new PasswordPolicyError(
      "newPassword",
      "Choose a password different from the current one",
    );
  }
  await deps.db
    .update(users)
    .set({
      passwordHash: await hashPassword(input.newPassword),
      passwordChangedAt: now,
      updatedAt: now,
    })
    .where(eq(users.id, actor.userId));
  const revoked = await sessionsManager.revokeAllForUser(actor.userId, actor.sessionId);
  await recordAudit(
    deps.db,
    audit,
    {
      action: "auth.password_changed",
      outcome: "allowed",
      resourceType: "User",
      resourceId: actor.userId,
      details: { otherSessionsRevoked: revoked },
    },
    deps.now(),
  );
  return { otherSessionsRevoked: revoked };
}

/**
 * Start a password reset. Always answers the same way (no account enumeration, ASVS 2.5.x): when
 * the e-mail belongs to an active account, a single-use token is e-mailed in the background (so the
 * response time does not depend on it); older unused tokens of the account stop working.
 * Throttled per e-mail (3 / hour) and per IP (20 / hour). Audited `auth.password_reset_requested`.
 * @throws TooManyRequestsError
 */
export async function requestPasswordReset(
  deps: ServiceDeps & { db: Database },
  mail: MailTransport,
  input: { email: string },
  audit: AuditActor,
): Promise<void> {
  const now = deps.now();
  const emailIndex = deps.crypto.index("user.email", input.email);
  const reservation = await reserve(deps.db, now, keysFor("reset", emailIndex, audit.ip));
  if (reservation.blocked) {
    throw new TooManyRequestsError(
      "Too many reset requests; wait before trying again",
      reservation.blocked.retryAfterSeconds,
    );
  }
  const [u] = await deps.db
    .select({
      id: users.id,
      role: users.role,
      organizationId: users.organizationId,
      email: users.email,
      disabledAt: users.disabledAt,
    })
    .from(users)
    .where(eq(users.emailIndex, emailIndex))
    .limit(1);
  if (!u || u.disabledAt || u.role === "service") {
    await recordAudit(
      deps.db,
      audit,
      {
        action: "auth.password_reset_requested",
        outcome: "denied",
        resourceType: "User",
        resourceId: u?.id,
        details: { reason: !u ? "unknown_account" : u.disabledAt ? "disabled" : "service" },
      },
      now,
    );
    return;
  }
  const token = randomBytes(32).toString("base64url");
  await deps.db.transaction(async (tx) => {
    await tx
      .delete(passwordResetTokens)
      .where(and(eq(passwordResetTokens.userId, u.id), isNull(passwordResetTokens.usedAt)));
    await tx.insert(passwordResetTokens).values({
      id: uuidv7(),
      userId: u.id,
      tokenHash: sha256(token),
      expiresAt: new Date(now.getTime() + RESET_TOKEN_TTL_MINUTES * 60_000),
      createdAt: now,
    });
    await recordAudit(
      tx,
      { ...audit, userId: u.id, role: u.role, organizationId: u.organizationId },
      {
        action: "auth.password_reset_requested",
        outcome: "allowed",
        resourceType: "User",
        resourceId: u.id,
      },
      now,
    );
  });
  mail.enqueue({
    kind: "password_reset",
    to: deps.crypto.open<string>("users", "email", u.id, u.email),
    subject: "Reset your Haven password",
    text: [
      "Someone (hopefully you) asked to reset the password of your Haven account.",
      `To choose a new password, open this link within ${RESET_TOKEN_TTL_MINUTES} minutes:`,
      "",
      // The token travels in the URL fragment, which browsers never send to a server.
      `${mail.linkBase}/reset-password#token=${token}`,
      "",
      `Reset code (if the link does not open): ${token}`,
      "If you did not ask for this, ignore this e-mail; your password stays as it is.",
    ].join("\n"),
  });
}

/**
 * Finish a password reset with the e-mailed token: the token must be unused and unexpired; the new
 * password must pass the NIST rules. The token is consumed, other reset tokens deleted, every
 * session of the account revoked. MFA still applies at the next sign-in. Audited
 * `auth.password_reset`. @throws UnauthorizedError `reset_token_invalid`, PasswordPolicyError
 */
export async function resetPassword(
  deps: ServiceDeps & { db: Database },
  sessionsManager: SessionManager,
  input: { token: string; newPassword: string },
  audit: AuditActor,
): Promise<void> {
  const now = deps.now();
  const [row] = await deps.db
    .select({
      id: passwordResetTokens.id,
      userId: passwordResetTokens.userId,
      expiresAt: passwordResetTokens.expiresAt,
      usedAt: passwordResetTokens.usedAt,
      role: users.role,
      organizationId: users.organizationId,
      disabledAt: users.disabledAt,
    })
    .from(passwordResetTokens)
    .innerJoin(users, eq(users.id, passwordResetTokens.userId))
    .where(eq(passwordResetTokens.tokenHash, sha256(input.token)))
    .limit(1);
  const who = {
    ...audit,
    userId: row?.userId ?? null,
    role: row?.role ?? null,
    organizationId: row?.organizationId ?? null,
  };
  if (!row || row.usedAt || row.disabledAt || row.expiresAt.getTime() <= now.getTime()) {
    throw await auditDenial(
      deps.db,
      who,
      {
        action: "auth.password_reset",
        resourceType: "User",
        resourceId: row?.userId,
        details: {
          reason: !row
            ? "unknown_token"
            : row.usedAt
              ? "used"
              : row.disabledAt
                ? "disabled"
                : "expired",
        },
      },
      new UnauthorizedError(INVALID_RESET, "reset_token_invalid"),
      now,
    );
  }
  const ctx = await passwordContextFor(deps, row.userId);
  assertPasswordAcceptable(input.newPassword, ctx, "newPassword");
  const passwordHash = await hashPassword(input.newPassword);
  const consumed = await deps.db.transaction(async (tx) => {
    const used = await tx
      .update(passwordResetTokens)
      .set({ usedAt: now })
      .where(and(eq(passwordResetTokens.id, row.id), isNull(passwordResetTokens.usedAt)))
      .returning({ id: passwordResetTokens.id });
    if (used.length === 0) return false;
    await tx
      .delete(passwordResetTokens)
      .where(and(eq(passwordResetTokens.userId, row.userId), ne(passwordResetTokens.id, row.id)));
    await tx
      .update(users)
      .set({ passwordHash, passwordChangedAt: now, updatedAt: now })
      .where(eq(users.id, row.userId));
    await recordAudit(
      tx,
      who,
      {
        action: "auth.password_reset",
        outcome: "allowed",
        resourceType: "User",
        resourceId: row.userId,
      },
      now,
    );
    return true;
  });
  if (!consumed) throw new UnauthorizedError(INVALID_RESET, "reset_token_invalid");
  await sessionsManager.revokeAllForUser(row.userId);
}
