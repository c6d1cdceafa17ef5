import { z } from "zod";
import { email, password } from "../auth/schemas.ts";
import { API_KEY_SCOPES, ROLES } from "../kernel/roles.ts";
import { ASSIGNABLE_ROLES } from "./policy.ts";

/** Wire shapes of account administration: `auth.invitations.*`, `auth.users.*`, `auth.apiKeys.*`. */

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
/** `auth.invitations.list` input: `pending` (default: neither accepted, revoked nor expired) or `all`. */
export const invitationListInput = z
  .strictObject({
    status: z.enum(["pending", "all"]).default("pending"),
    limit: z.number().int().min(1).max(100).default(50),
    /** `nextCursor` of the previous page. */
    cursor: z.string().max(200).optional(),
  })
  .optional();
export const invitationListOutput = z.object({
  items: z.array(
    z.object({
      invitationId: z.uuid(),
      role: z.enum(ROLES),
      email: z.string(),
      /** UTC instants. */
      createdAt: z.date(),
      expiresAt: z.date(),
      acceptedAt: z.date().nullable(),
      revokedAt: z.date().nullable(),
      state: z.enum(["pending", "accepted", "revoked", "expired"]),
    }),
  ),
  nextCursor: z.string().nullable(),
});

export const userIdInput = z.strictObject({ userId: z.uuid() });
export const setRoleInput = z.strictObject({ userId: z.uuid(), role: z.enum(ASSIGNABLE_ROLES) });
export const setDisabledInput = z.strictObject({ userId: z.uuid(), disabled: z.boolean() });
export const sessionsRevokedOutput = z.object({ sessionsRevoked: z.number().int() });
/**
 * `auth.users.list` input: a page of accounts, oldest first (omit for the first 50); `roles`
 * narrows it (e.g. the workforce only, without the clinic's portal patients).
 */
export const usersListInput = z
  .strictObject({
    limit: z.number().int().min(1).max(100).default(50),
    roles: z
      .array(z.enum(["patient", ...ASSIGNABLE_ROLES]))
      .min(1)
      .max(4)
      .optional(),
    /** `nextCursor` of the previous page. */
    cursor: z.string().max(200).optional(),
  })
  .optional();
export const usersListOutput = z.object({
  items: z.array(
    z.object({
      id: z.uuid(),
      email: z.string(),
      role: z.enum(ROLES),
      disabled: z.boolean(),
      mfaEnrolled: z.boolean(),
      createdAt: z.date(),
      passwordChangedAt: z.date().nullable(),
    }),
  ),
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: z.string().nullable(),
});

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
