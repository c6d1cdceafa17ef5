import { eq } from "drizzle-orm";
import { patients, practitioners, users } from "../../db/schema/index.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, auditDenial, type DenialEvent, recordAudit } from "../kernel/audit.ts";
import type { Demographics } from "../kernel/demographics.ts";
import {
  ConflictError,
  sqlState,
  TooManyRequestsError,
  UnauthorizedError,
} from "../kernel/errors.ts";
import { isPrivileged, type Role } from "../kernel/roles.ts";
import {
  hashPassword,
  needsRehash,
  type PasswordContext,
  verifyDummy,
  verifyPassword,
} from "./password-hashing.ts";
import type { SessionManager } from "./session.ts";
import { keysFor, reserve, THROTTLE_LIMITS } from "./throttle.ts";

/** One generic message for every failed login, so it never tells which part was wrong (ASVS 2.2). */
export const LOGIN_FAILED_MESSAGE = "Invalid email or password";

export interface LoginInput {
  email: string;
  password: string;
}

/**
 * What the new session still needs before PHI: `verify` (send a TOTP or recovery code to
 * `auth.mfa.verify`), `enrol` (privileged account without an authenticator: `auth.mfa.enroll`
 * then `auth.mfa.confirm`), or `none`.
 */
export type MfaNext = "none" | "verify" | "enrol";

export interface LoginResult {
  /** Raw bearer token: shown to this caller once, stored only as its SHA-256. */
  token: string;
  expiresAt: Date;
  user: { id: string; role: Role; organizationId: string };
  mfa: MfaNext;
}

/** The request facts a login needs: audit fields plus the user agent. */
export type LoginRequest = AuditActor & { userAgent: string | null };

/**
 * Verify e-mail + password and open a session (without MFA; see {@link LoginResult.mfa}).
 * - Throttled per account (e-mail blind index, 5 failures / 15 min) and per IP (50 / 15 min) in
 *   Postgres; the attempt is reserved before the password is checked, so parallel guesses count.
 *   Over the limit: TOO_MANY_REQUESTS with retry-after (ASVS 2.2.1), audited `auth.login_throttled`;
 *   the failure that reaches the account limit is audited `auth.lockout`.
 * - Unknown e-mail, wrong password and disabled account all cost one argon2 verification and throw
 *   the same {@link UnauthorizedError} (ASVS 2.2.1, 3.2.x; no account enumeration).
 * - A hash made with older argon2 parameters is replaced after a successful verification (ASVS 2.4.4).
 * - Success and failure are audited (`auth.login`, `auth.login_failed`), never with the password.
 * @throws UnauthorizedError; TooManyRequestsError (also when the throttle store fails: fail closed)
 */
export async function login(
  deps: ServiceDeps,
  sessionsManager: SessionManager,
  input: LoginInput,
  request: LoginRequest,
): Promise<LoginResult> {
  const now = deps.now();
  const emailIndex = deps.crypto.index("user.email", input.email);
  const reservation = await reserve(deps.db, now, keysFor("login", emailIndex, request.ip));
  const [user] = await deps.db
    .select()
    .from(users)
    .where(eq(users.emailIndex, emailIndex))
    .limit(1);
  const who: AuditActor = {
    ...request,
    userId: user?.id ?? null,
    role: user?.role ?? null,
    organizationId: user?.organizationId ?? null,
  };
  if (reservation.blocked) {
    throw await auditDenial(
      deps.db,
      who,
      {
        action: "auth.login_throttled",
        resourceType: "User",
        resourceId: user?.id,
        details: {
          scope: "login",
          by: reservation.blocked.key.kind,
          retryAfterSeconds: reservation.blocked.retryAfterSeconds,
        },
      },
      new TooManyRequestsError(
        "Too many failed sign-in attempts; wait before trying again",
        reservation.blocked.retryAfterSeconds,
      ),
      now,
    );
  }
  const ok = user
    ? await verifyPassword(user.passwordHash, input.password)
    : await verifyDummy(input.password);
  reservation.settle();
  if (!user || !ok || user.disabledAt) {
    const accountFailures = reservation.counts[0] ?? 0;
    const events: DenialEvent[] = [
      {
        action: "auth.login_failed",
        resourceType: "User",
        resourceId: user?.id,
        details: {
          reason: !user ? "unknown_account" : !ok ? "bad_password" : "disabled",
          failuresInWindow: accountFailures,
        },
      },
    ];
    if (accountFailures === THROTTLE_LIMITS.login.account.max) {
      events.push({
        action: "auth.lockout",
        resourceType: "User",
        resourceId: user?.id,
        details: {
          scope: "login",
          failures: accountFailures,
          windowMinutes: THROTTLE_LIMITS.login.account.windowMs / 60_000,
        },
      });
    }
    throw await auditDenial(
      deps.db,
      who,
      events,
      new UnauthorizedError(LOGIN_FAILED_MESSAGE, "invalid_credentials"),
      deps.now(),
    );
  }
  await reservation.succeed(["account"]);
  if (needsRehash(user.passwordHash)) {
    await deps.db
      .update(users)
      .set({ passwordHash: await hashPassword(input.password), updatedAt: deps.now() })
      .where(eq(users.id, user.id));
  }
  const session = await sessionsManager.create(user.id, {
    ip: request.ip,
    userAgent: request.userAgent,
    mfaVerified: false,
    now: deps.now(),
  });
  const mfa: MfaNext = user.totpEnabledAt ? "verify" : isPrivileged(user.role) ? "enrol" : "none";
  await recordAudit(
    deps.db,
    { ...who, sessionId: session.sessionId },
    {
      action: "auth.login",
      outcome: "allowed",
      resourceType: "User",
      resourceId: user.id,
      details: { mfa, rehashed: needsRehash(user.passwordHash) },
    },
    deps.now(),
  );
  return {
    token: session.token,
    expiresAt: session.expiresAt,
    user: { id: user.id, role: user.role, organizationId: user.organizationId },
    mfa,
  };
}

export interface NewUser {
  email: string;
  password: string;
  role: Role;
  organizationId: string;
}

/**
 * Create an account (demo seed, invitations, test factories). The e-mail is stored encrypted with a
 * blind index for lookup. Password rules are the caller's to apply (invitations do; the seed and
 * factories use fixed strong passphrases).
 * @returns the new user's id
 * @throws ConflictError when the e-mail is already registered
 */
export async function createUser(deps: ServiceDeps, input: NewUser): Promise<string> {
  const id = uuidv7();
  const passwordHash = await hashPassword(input.password);
  try {
    await deps.db.insert(users).values({
      id,
      organizationId: input.organizationId,
      role: input.role,
      emailIndex: deps.crypto.index("user.email", input.email),
      email: deps.crypto.seal("users", "email", id, input.email),
      passwordHash,
      passwordChangedAt: deps.now(),
    });
  } catch (err) {
    if (sqlState(err) === "23505")
      throw new ConflictError("An account with this email already exists");
    throw err;
  }
  return id;
}

/**
 * What a user's password may not be built from: their e-mail and, for a portal patient, the names
 * on their record; for a clinician, their practitioner name. Decrypts in memory only.
 */
export async function passwordContextFor(
  deps: ServiceDeps,
  userId: string,
): Promise<PasswordContext & { email: string }> {
  const [u] = await deps.db
    .select({ email: users.email })
    .from(users)
    .where(eq(users.id, userId))
    .limit(1);
  if (!u) throw new UnauthorizedError("No such account");
  const email = deps.crypto.open<string>("users", "email", userId, u.email);
  const names: string[] = [];
  const [p] = await deps.db
    .select({ id: patients.id, demographics: patients.demographics })
    .from(patients)
    .where(eq(patients.userId, userId))
    .limit(1);
  if (p) {
    const d = deps.crypto.open<Demographics>("patients", "demographics", p.id, p.demographics);
    names.push(d.name.family ?? "", ...(d.name.given ?? []));
  }
  const [pr] = await deps.db
    .select({ name: practitioners.name })
    .from(practitioners)
    .where(eq(practitioners.userId, userId))
    .limit(1);
  if (pr) names.push(pr.name);
  return { email, names };
}
