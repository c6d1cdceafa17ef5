import { randomBytes } from "node:crypto";
import { and, count, eq, isNull, lt, or } from "drizzle-orm";
import { Secret, TOTP } from "otpauth";
import QRCode from "qrcode";
import type { Executor } from "../../db/client.ts";
import { mfaRecoveryCodes, users } from "../../db/schema/index.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import { keysFor, type Reservation, reserve, THROTTLE_LIMITS } from "../auth/throttle.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, auditDenial, type DenialEvent, recordAudit } from "../kernel/audit.ts";
import { ForbiddenError, NotFoundError, TooManyRequestsError } from "../kernel/errors.ts";
import { sha256Hex } from "../kernel/hash.ts";

/**
 * TOTP multi-factor authentication (RFC 6238 via `otpauth`; OWASP ASVS 2.8, 45 CFR 164.312(d)):
 * SHA-1, 6 digits, 30-second steps, ±1 step of clock drift. Secrets (160 random bits) are stored
 * only encrypted (`users.totp_secret`); a code is accepted at most once (`users.totp_last_step`),
 * failed codes are throttled per account and per IP, and one-time recovery codes (120 random bits
 * each) are stored as SHA-256 only.
 */
export const TOTP_SETTINGS = {
  issuer: "Haven",
  algorithm: "SHA1",
  digits: 6,
  period: 30,
  /** Steps of drift accepted either side of now (ASVS 2.8.1: time-based, short-lived). */
  window: 1,
} as const;

/** How many recovery codes a user holds after enrolment or regeneration. */
export const RECOVERY_CODE_COUNT = 10;

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

function totpFor(secretBase32: string, label: string): TOTP {
  return new TOTP({
    issuer: TOTP_SETTINGS.issuer,
    label,
    algorithm: TOTP_SETTINGS.algorithm,
    digits: TOTP_SETTINGS.digits,
    period: TOTP_SETTINGS.period,
    secret: Secret.fromBase32(secretBase32),
  });
}

/** A fresh 160-bit TOTP secret, base32 (what authenticator apps take). */
export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

/** The current code for a base32 secret at `at` (the `npm run totp` CLI, demo, tests). */
export function totpCode(secretBase32: string, at: Date = new Date()): string {
  return TOTP.generate({
    secret: Secret.fromBase32(secretBase32),
    algorithm: TOTP_SETTINGS.algorithm,
    digits: TOTP_SETTINGS.digits,
    period: TOTP_SETTINGS.period,
    timestamp: at.getTime(),
  });
}

/** `otpauth://totp/Haven:label?secret=…&issuer=Haven…` for authenticator apps. */
export function totpUri(secretBase32: string, label: string): string {
  return totpFor(secretBase32, label).toString();
}

/**
 * The time step a code belongs to, or null when it matches no step within the window.
 * Comparison is constant-time (otpauth uses `crypto.timingSafeEqual`).
 */
function matchingStep(secretBase32: string, code: string, at: Date): number | null {
  const delta = TOTP.validate({
    token: code,
    secret: Secret.fromBase32(secretBase32),
    algorithm: TOTP_SETTINGS.algorithm,
    digits: TOTP_SETTINGS.digits,
    period: TOTP_SETTINGS.period,
    timestamp: at.getTime(),
    window: TOTP_SETTINGS.window,
  });
  if (delta === null) return null;
  return TOTP.counter({ period: TOTP_SETTINGS.period, timestamp: at.getTime() }) + delta;
}

/** One-time recovery codes: 24 base32 characters (120 bits) shown as four groups of six. */
function newRecoveryCode(): string {
  const bytes = randomBytes(24);
  let out = "";
  for (const b of bytes) out += BASE32[b & 31];
  return out.match(/.{6}/g)?.join("-") ?? out;
}

function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[^a-z2-7]/g, "");
}

function hashRecoveryCode(code: string): string {
  return sha256Hex(normalizeRecoveryCode(code));
}

/** What an MFA check needs to know about the request (throttle by IP, audit). */
export type MfaRequest = Partial<AuditActor>;

function auditActorFor(userId: string, request: MfaRequest | undefined): AuditActor {
  return {
    userId,
    role: request?.role ?? null,
    sessionId: request?.sessionId ?? null,
    organizationId: request?.organizationId ?? null,
    ip: request?.ip ?? null,
    requestId: request?.requestId ?? null,
  };
}

async function throttleMfa(
  deps: ServiceDeps,
  userId: string,
  request: MfaRequest | undefined,
): Promise<Reservation> {
  const now = deps.now();
  const r = await reserve(deps.db, now, keysFor("mfa", userId, request?.ip ?? null));
  if (r.blocked) {
    throw await auditDenial(
      deps.db,
      auditActorFor(userId, request),
      {
        action: "auth.login_throttled",
        resourceType: "User",
        resourceId: userId,
        details: {
          scope: "mfa",
          by: r.blocked.key.kind,
          retryAfterSeconds: r.blocked.retryAfterSeconds,
        },
      },
      new TooManyRequestsError(
        "Too many wrong codes; wait before trying again",
        r.blocked.retryAfterSeconds,
      ),
      now,
    );
  }
  return r;
}

/** Audit a wrong code (and the lockout it may cause), then hand back `error` to throw. */
async function mfaFailure<E extends Error>(
  deps: ServiceDeps,
  userId: string,
  request: MfaRequest | undefined,
  reservation: Reservation,
  reason: string,
  error: E,
): Promise<E> {
  const accountFailures = reservation.counts[0] ?? 0;
  const events: DenialEvent[] = [
    {
      action: "auth.mfa_failed",
      resourceType: "User",
      resourceId: userId,
      details: { reason },
    },
  ];
  if (accountFailures === THROTTLE_LIMITS.mfa.account.max) {
    events.push({
      action: "auth.lockout",
      resourceType: "User",
      resourceId: userId,
      details: { scope: "mfa", failures: accountFailures },
    });
  }
  return auditDenial(deps.db, auditActorFor(userId, request), events, error, deps.now());
}

/**
 * Verify a FRESH TOTP code for a user: right for now (±1 step), from a step later than any code
 * this user has used before (replay refused, ASVS 2.8.4), and within the failed-code throttle
 * (5 per 15 min per account, 50 per IP; ASVS 2.2.1). Used by `auth.mfa.verify` and by
 * break-the-glass re-authentication. Failures are audited (`auth.mfa_failed`, `auth.lockout`);
 * the caller audits the success in its own terms. Call it with the plain database, not inside a
 * transaction that may roll back, or failed attempts would not be counted.
 * @param code six digits (spaces ignored)
 * @param request ip (per-IP throttle) and the audit fields of the request, when known
 * @throws TooManyRequestsError when throttled; ForbiddenError reason `mfa_not_enrolled`,
 *   `mfa_code_invalid` or `mfa_code_reused`
 */
export async function verifyFreshTotp(
  deps: ServiceDeps,
  userId: string,
  code: string,
  request?: MfaRequest,
): Promise<void> {
  const reservation = await throttleMfa(deps, userId, request);
  const [user] = await deps.db
    .select({ secret: users.totpSecret, enabledAt: users.totpEnabledAt })
    .from(users)
    .where(eq(users.id, userId))
    .limit(1);
  if (!user?.secret || !user.enabledAt) {
    await reservation.succeed([]);
    throw new ForbiddenError("No authenticator is enrolled for this account", "mfa_not_enrolled");
  }
  const now = deps.now();
  const secret = deps.crypto.open<string>("users", "totp_secret", userId, user.secret);
  const step = matchingStep(secret, code.replace(/\s+/g, ""), now);
  if (step === null) {
    throw await mfaFailure(
      deps,
      userId,
      request,
      reservation,
      "bad_code",
      new ForbiddenError("That code is not valid", "mfa_code_invalid"),
    );
  }
  // Atomic: two requests racing with the same code cannot both move the step forward.
  const moved = await deps.db
    .update(users)
    .set({ totpLastStep: step })
    .where(and(eq(users.id, userId), or(isNull(users.totpLastStep), lt(users.totpLastStep, step))))
    .returning({ id: users.id });
  if (moved.length === 0) {
    throw await mfaFailure(
      deps,
      userId,
      request,
      reservation,
      "reused_code",
      new ForbiddenError("That code was already used; wait for the next one", "mfa_code_reused"),
    );
  }
  await reservation.succeed(["account"]);
}

/**
 * Spend one recovery code (single use: the row is marked used atomically). Throttled and audited
 * like a TOTP code. @throws TooManyRequestsError; ForbiddenError reason `mfa_code_invalid`
 */
export async function useRecoveryCode(
  deps: ServiceDeps,
  userId: string,
  code: string,
  request?: MfaRequest,
): Promise<{ remaining: number }> {
  const reservation = await throttleMfa(deps, userId, request);
  const used = await deps.db
    .update(mfaRecoveryCodes)
    .set({ usedAt: deps.now() })
    .where(
      and(
        eq(mfaRecoveryCodes.userId, userId),
        eq(mfaRecoveryCodes.codeHash, hashRecoveryCode(code)),
        isNull(mfaRecoveryCodes.usedAt),
      ),
    )
    .returning({ id: mfaRecoveryCodes.id });
  if (used.length === 0) {
    throw await mfaFailure(
      deps,
      userId,
      request,
      reservation,
      "bad_recovery_code",
      new ForbiddenError("That recovery code is not valid", "mfa_code_invalid"),
    );
  }
  await reservation.succeed(["account"]);
  return { remaining: await remainingRecoveryCodes(deps.db, userId) };
}

async function remainingRecoveryCodes(db: Executor, userId: string): Promise<number> {
  const [row] = await db
    .select({ n: count() })
    .from(mfaRecoveryCodes)
    .where(and(eq(mfaRecoveryCodes.userId, userId), isNull(mfaRecoveryCodes.usedAt)));
  return Number(row?.n ?? 0);
}

/** Replace a user's recovery codes; @returns the new codes (shown once; only hashes are stored). */
async function replaceRecoveryCodes(db: Executor, userId: string): Promise<string[]> {
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
  await db.delete(mfaRecoveryCodes).where(eq(mfaRecoveryCodes.userId, userId));
  await db
    .insert(mfaRecoveryCodes)
    .values(codes.map((c) => ({ id: uuidv7(), userId, codeHash: hashRecoveryCode(c) })));
  return codes;
}

/** MFA state of an account (no secrets). */
export interface MfaStatus {
  enrolled: boolean;
  enrolledAt: Date | null;
  pendingEnrolment: boolean;
  recoveryCodesRemaining: number;
}

/** Read a user's MFA state. @throws NotFoundError */
export async function mfaStatus(deps: ServiceDeps, userId: string): Promise<MfaStatus> {
  const [u] = await deps.db
    .select({ enabledAt: users.totpEnabledAt, pending: users.totpPendingSecret })
    .from(users)
    .where(eq(users.id, userId))
    .limit(1);
  if (!u) throw new NotFoundError("No such account");
  return {
    enrolled: u.enabledAt !== null,
    enrolledAt: u.enabledAt,
    pendingEnrolment: u.pending !== null,
    recoveryCodesRemaining: await remainingRecoveryCodes(deps.db, userId),
  };
}

/** What `auth.mfa.enroll` returns: the secret three ways (shown to the account owner only). */
export interface TotpEnrolment {
  secret: string;
  uri: string;
  /** PNG QR code of `uri` as a `data:image/png;base64,…` URL. */
  qrDataUrl: string;
}

/**
 * Start (or restart) TOTP enrolment: a new secret is stored encrypted as pending; the current
 * authenticator, if any, keeps working until {@link confirmTotpEnrolment}. Replacing a confirmed
 * authenticator needs an MFA-verified session (ASVS 2.8.x, 3.3.x: a stolen password alone cannot
 * swap the second factor). Audited `auth.mfa_enrol_started`.
 * @param label shown in the authenticator app (the account's e-mail)
 * @throws ForbiddenError reason `mfa_required` when replacing without an MFA-verified session
 */
export async function beginTotpEnrolment(
  deps: ServiceDeps,
  userId: string,
  label: string,
  session: { mfaVerified: boolean },
  audit: AuditActor,
): Promise<TotpEnrolment> {
  const status = await mfaStatus(deps, userId);
  if (status.enrolled && !session.mfaVerified) {
    throw new ForbiddenError(
      "Verify your current authenticator before replacing it",
      "mfa_required",
    );
  }
  const secret = newTotpSecret();
  await deps.db
    .update(users)
    .set({
      totpPendingSecret: deps.crypto.seal("users", "totp_pending_secret", userId, secret),
      updatedAt: deps.now(),
    })
    .where(eq(users.id, userId));
  await recordAudit(
    deps.db,
    audit,
    {
      action: "auth.mfa_enrol_started",
      outcome: "allowed",
      resourceType: "User",
      resourceId: userId,
      details: { replacing: status.enrolled },
    },
    deps.now(),
  );
  const uri = totpUri(secret, label);
  return { secret, uri, qrDataUrl: await QRCode.toDataURL(uri, { errorCorrectionLevel: "M" }) };
}

/**
 * Confirm enrolment with the first code from the app: the pending secret becomes the account's
 * authenticator, fresh recovery codes replace any old ones, and the code's step is remembered
 * (it cannot be replayed). Throttled and audited like any code (`auth.mfa_enrolled`).
 * @returns the recovery codes (shown once) and whether an older authenticator was replaced
 * @throws ForbiddenError reason `mfa_not_pending` or `mfa_code_invalid`; TooManyRequestsError
 */
export async function confirmTotpEnrolment(
  deps: ServiceDeps,
  userId: string,
  code: string,
  audit: AuditActor,
): Promise<{ recoveryCodes: string[]; replaced: boolean }> {
  const reservation = await throttleMfa(deps, userId, audit);
  const [u] = await deps.db
    .select({ pending: users.totpPendingSecret, enabledAt: users.totpEnabledAt })
    .from(users)
    .where(eq(users.id, userId))
    .limit(1);
  if (!u?.pending) {
    await reservation.succeed([]);
    throw new ForbiddenError("Start enrolment first (auth.mfa.enroll)", "mfa_not_pending");
  }
  const secret = deps.crypto.open<string>("users", "totp_pending_secret", userId, u.pending);
  const now = deps.now();
  const step = matchingStep(secret, code.replace(/\s+/g, ""), now);
  if (step === null) {
    throw await mfaFailure(
      deps,
      userId,
      audit,
      reservation,
      "bad_enrolment_code",
      new ForbiddenError("That code is not valid", "mfa_code_invalid"),
    );
  }
  const recoveryCodes = await deps.db.transaction(async (tx) => {
    await tx
      .update(users)
      .set({
        totpSecret: deps.crypto.seal("users", "totp_secret", userId, secret),
        totpPendingSecret: null,
        totpEnabledAt: now,
        totpLastStep: step,
        updatedAt: now,
      })
      .where(eq(users.id, userId));
    const codes = await replaceRecoveryCodes(tx, userId);
    await recordAudit(
      tx,
      audit,
      {
        action: "auth.mfa_enrolled",
        outcome: "allowed",
        resourceType: "User",
        resourceId: userId,
        details: { replaced: u.enabledAt !== null },
      },
      now,
    );
    return codes;
  });
  await reservation.succeed(["account"]);
  return { recoveryCodes, replaced: u.enabledAt !== null };
}

/**
 * New recovery codes for an MFA-verified session (the old ones stop working).
 * Audited `auth.mfa_recovery_codes_regenerated`. @throws ForbiddenError `mfa_not_enrolled`
 */
export async function regenerateRecoveryCodes(
  deps: ServiceDeps,
  userId: string,
  audit: AuditActor,
): Promise<string[]> {
  const status = await mfaStatus(deps, userId);
  if (!status.enrolled) {
    throw new ForbiddenError("No authenticator is enrolled for this account", "mfa_not_enrolled");
  }
  return deps.db.transaction(async (tx) => {
    const codes = await replaceRecoveryCodes(tx, userId);
    await recordAudit(
      tx,
      audit,
      {
        action: "auth.mfa_recovery_codes_regenerated",
        outcome: "allowed",
        resourceType: "User",
        resourceId: userId,
      },
      deps.now(),
    );
    return codes;
  });
}

/**
 * Remove a user's authenticator, pending enrolment and recovery codes (admin reset). The caller
 * revokes the user's sessions and audits. Runs on the given executor (a transaction).
 */
export async function clearMfa(db: Executor, userId: string, now: Date): Promise<void> {
  await db
    .update(users)
    .set({
      totpSecret: null,
      totpPendingSecret: null,
      totpEnabledAt: null,
      totpLastStep: null,
      updatedAt: now,
    })
    .where(eq(users.id, userId));
  await db.delete(mfaRecoveryCodes).where(eq(mfaRecoveryCodes.userId, userId));
}

/**
 * Enrol a user directly with a new confirmed secret (demo seed, test factories; no code needed).
 * @returns the base32 secret
 */
export async function enrolTotpDirectly(deps: ServiceDeps, userId: string): Promise<string> {
  const secret = newTotpSecret();
  await deps.db
    .update(users)
    .set({
      totpSecret: deps.crypto.seal("users", "totp_secret", userId, secret),
      totpPendingSecret: null,
      totpEnabledAt: deps.now(),
      totpLastStep: null,
    })
    .where(eq(users.id, userId));
  return secret;
}
