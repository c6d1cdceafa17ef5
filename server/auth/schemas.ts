import { z } from "zod";
import { ROLES } from "../kernel/roles.ts";

/**
 * Wire shapes of `auth.*` sign-in, session and password procedures (mfa and account
 * administration keep theirs in `mfa/schemas.ts` and `accounts/schemas.ts`).
 *
 * Passwords are checked against NIST 800-63B rules in the service (12–128 code points, not common,
 * not built from the e-mail or name) so the caller gets one precise message; here only a hard cap
 * (512 UTF-16 units, room for 128 astral characters) stops oversized bodies.
 */
export const password = z.string().min(1).max(512);
export const email = z.string().trim().min(3).max(254).pipe(z.email());
const empty = z.strictObject({}).optional();

export const loginInput = z.strictObject({
  email: z.string().trim().min(3).max(254).email(),
  password,
});

export const sessionUserOutput = z.object({
  id: z.uuid(),
  role: z.enum(ROLES),
  organizationId: z.uuid(),
  patientId: z.uuid().nullable(),
  practitionerId: z.uuid().nullable(),
});

const mfaNext = z.enum(["none", "verify", "enrol"]);

export const loginOutput = z.object({
  token: z.string(),
  expiresAt: z.date(),
  user: z.object({ id: z.uuid(), role: z.enum(ROLES), organizationId: z.uuid() }),
  /** What the session still needs before PHI procedures. */
  mfa: mfaNext,
});

export const meOutput = z.object({
  user: sessionUserOutput,
  mfaVerified: z.boolean(),
  mfaEnrolled: z.boolean(),
  /**
   * Minutes without activity after which the server ends this session (clinician/staff/admin;
   * null for patients): a browser signs itself out at the same moment, with a message.
   */
  idleTimeoutMinutes: z.number().int().positive().nullable(),
});

export const okOutput = z.object({ ok: z.literal(true) });
export const emptyInput = empty;

export const sessionInfoOutput = z.object({
  id: z.string(),
  current: z.boolean(),
  createdAt: z.date(),
  lastSeenAt: z.date(),
  expiresAt: z.date(),
  mfaVerified: z.boolean(),
  ip: z.string().nullable(),
  userAgent: z.string().nullable(),
});
export const sessionsListOutput = z.array(sessionInfoOutput);
export const sessionRevokeInput = z.strictObject({
  /** The `id` from `auth.sessions.list` (SHA-256 hex of the session token). */
  sessionId: z.string().regex(/^[0-9a-f]{64}$/, "a session id from auth.sessions.list"),
});
export const revokedCountOutput = z.object({ revoked: z.number().int() });

export const passwordChangeInput = z.strictObject({
  currentPassword: password,
  newPassword: password,
});
export const passwordChangeOutput = z.object({ otherSessionsRevoked: z.number().int() });
export const passwordResetRequestInput = z.strictObject({ email });
export const passwordResetInput = z.strictObject({
  token: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "the code from the e-mail"),
  newPassword: password,
});
