import { z } from "zod";
import { ASSIGNABLE_ROLES } from "../accounts/policy.ts";
import { API_KEY_SCOPES, ROLES } from "../kernel/roles.ts";

/**
 * Passwords are checked against NIST 800-63B rules in the service (12–128 code points, not common,
 * not built from the e-mail or name) so the caller gets one precise message; here only a hard cap
 * (512 UTF-16 units, room for 128 astral characters) stops oversized bodies.
 */
const password = z.string().min(1).max(512);
const email = z.string().trim().min(3).max(254).pipe(z.email());
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

/** Six digits; spaces are ignored ("123 456"). */
const totpCode = z
  .string()
  .max(16)
  .transform((s) => s.replace(/\s+/g, ""))
  .pipe(z.string().regex(/^\d{6}$/, "six digits from the authenticator app"));

export const mfaStatusOutput = z.object({
  enrolled: z.boolean(),
  enrolledAt: z.date().nullable(),
  pendingEnrolment: z.boolean(),
  recoveryCodesRemaining: z.number().int(),
  sessionVerified: z.boolean(),
});
export const mfaEnrollOutput = z.object({
  secret: z.string(),
  uri: z.string().startsWith("otpauth://totp/"),
  qrDataUrl: z.string().startsWith("data:image/png;base64,"),
});
export const mfaCodeInput = z.strictObject({ code: totpCode });
export const mfaVerifyInput = z.union([
  z.strictObject({ code: totpCode }),
  z.strictObject({ recoveryCode: z.string().trim().min(20).max(40) }),
]);
export const sessionTokenOutput = z.object({ token: z.string(), expiresAt: z.date() });
export const mfaConfirmOutput = z.object({
  token: z.string(),
  expiresAt: z.date(),
  /** One-time recovery codes: shown once, store them somewhere safe. */
  recoveryCodes: z.array(z.string()),
});
export const recoveryCodesOutput = z.object({ recoveryCodes: z.array(z.string()) });

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

export const invitationCreateInput = z.strictObject({
  role: z.enum(["patient", "clinician", "staff", "admin"]),
  patientId: z.uuid().optional(),
  practitionerId: z.uuid().optional(),
  email: email.optional(),
  /** 1 hour to 14 days; default 72 hours. */
  expiresInHours: z
    .number()
    .int()
    .min(1)
    .max(24 * 14)
    .optional(),
});
export const invitationCreateOutput = z.object({ invitationId: z.uuid(), expiresAt: z.date() });
export const invitationAcceptInput = z.strictObject({
  token: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "the code from the invitation"),
  /** Portal invitations: the patient's date of birth, `YYYY-MM-DD`. */
  birthDate: z.iso.date().optional(),
  /**
   * Portal invitations sent to an address not on file: the 8-character code e-mailed to the
   * patient's contact on file (ADR 0008). Case-insensitive.
   */
  contactCode: z
    .string()
    .regex(/^[0-9A-Za-z]{8}$/, "the 8-character code sent to the e-mail address on file")
    .optional(),
  password,
});
export const invitationRevokeInput = z.strictObject({ invitationId: z.uuid() });

export const userIdInput = z.strictObject({ userId: z.uuid() });
export const setRoleInput = z.strictObject({ userId: z.uuid(), role: z.enum(ASSIGNABLE_ROLES) });
export const setDisabledInput = z.strictObject({ userId: z.uuid(), disabled: z.boolean() });
export const sessionsRevokedOutput = z.object({ sessionsRevoked: z.number().int() });
export const usersListOutput = z.array(
  z.object({
    id: z.uuid(),
    email: z.string(),
    role: z.enum(ROLES),
    disabled: z.boolean(),
    mfaEnrolled: z.boolean(),
    createdAt: z.date(),
    passwordChangedAt: z.date().nullable(),
  }),
);

export const apiKeyCreateInput = z.strictObject({
  name: z.string().trim().min(1).max(100),
  scopes: z.array(z.enum(API_KEY_SCOPES)).min(1).max(API_KEY_SCOPES.length),
  /** Optional expiry (UTC). */
  expiresAt: z.date().optional(),
});
const apiKeyInfo = z.object({
  id: z.uuid(),
  name: z.string(),
  prefix: z.string(),
  scopes: z.array(z.enum(API_KEY_SCOPES)),
  userId: z.uuid(),
  createdBy: z.uuid().nullable(),
  createdAt: z.date(),
  lastUsedAt: z.date().nullable(),
  expiresAt: z.date().nullable(),
  revokedAt: z.date().nullable(),
});
export const apiKeyCreateOutput = z.object({
  /** The key itself: shown once, never retrievable again. */
  key: z.string(),
  info: apiKeyInfo,
});
export const apiKeyListOutput = z.array(apiKeyInfo);
export const apiKeyRevokeInput = z.strictObject({ keyId: z.uuid() });
