import { eq } from "drizzle-orm";
import { users } from "../../db/schema/index.ts";
import type { SessionIo } from "../auth/own-sessions.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, recordAudit } from "../kernel/audit.ts";
import { UnauthorizedError } from "../kernel/errors.ts";
import type { Actor } from "../kernel/roles.ts";
import {
  beginTotpEnrolment,
  confirmTotpEnrolment,
  type MfaStatus,
  mfaStatus,
  type TotpEnrolment,
  useRecoveryCode,
  verifyFreshTotp,
} from "./service.ts";

/**
 * The MFA procedures as the signed-in caller sees them: each one ties a factor check in
 * `service.ts` to the caller's session. Passing MFA replaces the session with a new, MFA-verified
 * one (OWASP ASVS 3.2.1: a new token at every privilege change), sets it as the cookie, and the
 * old token stops working.
 */

/** The session's state after a step-up: the new raw token (shown once) and its expiry. */
export interface SteppedUpSession {
  token: string;
  expiresAt: Date;
}

/** {@link MfaStatus} plus whether the calling session has passed MFA. */
export async function mfaStatusOfSession(
  deps: ServiceDeps,
  actor: Actor,
  sessionVerified: boolean,
): Promise<MfaStatus & { sessionVerified: boolean }> {
  return { ...(await mfaStatus(deps, actor.userId)), sessionVerified };
}

/**
 * Start TOTP enrolment for the caller, labelled with the account's e-mail in the authenticator
 * app ({@link beginTotpEnrolment}). @throws UnauthorizedError when the account is gone; as
 * {@link beginTotpEnrolment} otherwise
 */
export async function beginOwnEnrolment(
  deps: ServiceDeps,
  actor: Actor,
  session: { mfaVerified: boolean },
  audit: AuditActor,
): Promise<TotpEnrolment> {
  const [u] = await deps.db
    .select({ email: users.email })
    .from(users)
    .where(eq(users.id, actor.userId))
    .limit(1);
  if (!u) throw new UnauthorizedError("Sign in required");
  const email = deps.crypto.open<string>("users", "email", actor.userId, u.email);
  return beginTotpEnrolment(deps, actor.userId, email, session, audit);
}

/** Replace the caller's session by an MFA-verified one and set its cookie. */
async function stepUp(io: SessionIo, actor: Actor) {
  const next = await io.sessions.rotate(actor.sessionId, { mfaVerified: true });
  if (!next) throw new UnauthorizedError("Sign in required");
  io.setCookie(io.sessions.cookie(next.token));
  return next;
}

/**
 * Confirm enrolment with the first code from the app ({@link confirmTotpEnrolment}); the session
 * becomes MFA-verified, and replacing an older authenticator revokes every other session.
 * @returns the new session and the one-time recovery codes (shown once)
 * @throws as {@link confirmTotpEnrolment}; UnauthorizedError when the session ended meanwhile
 */
export async function confirmOwnEnrolment(
  deps: ServiceDeps,
  io: SessionIo,
  actor: Actor,
  audit: AuditActor,
  code: string,
): Promise<SteppedUpSession & { recoveryCodes: string[] }> {
  const { recoveryCodes, replaced } = await confirmTotpEnrolment(deps, actor.userId, code, audit);
  const next = await stepUp(io, actor);
  if (replaced) await io.sessions.revokeAllForUser(actor.userId, next.sessionId);
  return { token: next.token, expiresAt: next.expiresAt, recoveryCodes };
}

/**
 * Pass MFA with a TOTP code ({@link verifyFreshTotp}: a reused step is refused) or a one-time
 * recovery code ({@link useRecoveryCode}). Audited `auth.mfa_verified` with the method and the
 * recovery codes left, under the new session's id.
 * @throws ForbiddenError `mfa_code_invalid` / `mfa_code_reused` / `mfa_not_enrolled`,
 *   TooManyRequestsError; UnauthorizedError when the session ended meanwhile
 */
export async function verifyOwnMfa(
  deps: ServiceDeps,
  io: SessionIo,
  actor: Actor,
  audit: AuditActor,
  input: { code: string } | { recoveryCode: string },
): Promise<SteppedUpSession> {
  let method: "totp" | "recovery_code";
  let remaining: number | null = null;
  if ("code" in input) {
    await verifyFreshTotp(deps, actor.userId, input.code, audit);
    method = "totp";
  } else {
    remaining = (await useRecoveryCode(deps, actor.userId, input.recoveryCode, audit)).remaining;
    method = "recovery_code";
  }
  const next = await stepUp(io, actor);
  await recordAudit(
    deps.db,
    { ...audit, sessionId: next.sessionId },
    {
      action: "auth.mfa_verified",
      outcome: "allowed",
      resourceType: "Session",
      details: { method, recoveryCodesRemaining: remaining },
    },
    deps.now(),
  );
  return { token: next.token, expiresAt: next.expiresAt };
}
