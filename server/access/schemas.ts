import { z } from "zod";

/** `access.breakGlass` input. */
export const breakGlassInput = z.strictObject({
  patientId: z.uuid(),
  /** Why the clinician needs the record now (reviewed by the organization's admins). */
  reason: z
    .string()
    .trim()
    .min(10, "state the reason for emergency access (at least 10 characters)")
    .max(1000),
  /** A fresh code from the clinician's authenticator (re-authentication for this access). */
  code: z
    .string()
    .trim()
    .regex(/^\d{6}$/, "enter the 6-digit code from your authenticator"),
});

export const grantOutput = z.object({
  grantId: z.uuid(),
  patientId: z.uuid(),
  /** UTC instants. */
  grantedAt: z.date(),
  expiresAt: z.date(),
  revokedAt: z.date().nullable(),
  state: z.enum(["active", "expired", "revoked"]),
});

export const revokeInput = z.strictObject({ grantId: z.uuid() });

export const myGrantsInput = z.strictObject({}).optional();
export const myGrantsOutput = z.array(grantOutput);

/** `audit.breakGlassReview` input. */
export const reviewInput = z.strictObject({
  /** `pending`: not yet acknowledged (default); `reviewed`; `all`. */
  status: z.enum(["pending", "reviewed", "all"]).default("pending"),
  limit: z.number().int().min(1).max(100).default(50),
  cursor: z.string().max(200).optional(),
});

export const reviewItem = z.object({
  grantId: z.uuid(),
  patientId: z.uuid(),
  clinician: z.object({
    userId: z.uuid(),
    practitionerId: z.uuid().nullable(),
    practitionerName: z.string().nullable(),
  }),
  reason: z.string(),
  grantedAt: z.date(),
  expiresAt: z.date(),
  revokedAt: z.date().nullable(),
  state: z.enum(["active", "expired", "revoked"]),
  /** Reads made under the grant (audited `access.break_glass_used` rows). */
  accessCount: z.number().int(),
  review: z
    .object({
      reviewedAt: z.date(),
      reviewedByUserId: z.uuid().nullable(),
      outcome: z.enum(["appropriate", "inappropriate"]),
      note: z.string().nullable(),
    })
    .nullable(),
});

export const reviewOutput = z.object({
  items: z.array(reviewItem),
  nextCursor: z.string().nullable(),
});

/** `audit.breakGlassAcknowledge` input. */
export const acknowledgeInput = z.strictObject({
  grantId: z.uuid(),
  outcome: z.enum(["appropriate", "inappropriate"]),
  note: z.string().trim().max(2000).optional(),
});

/** `audit.breakGlassAcknowledge` output: the review as recorded. */
export const acknowledgeOutput = z.object({
  reviewedAt: z.date(),
  reviewedByUserId: z.uuid().nullable(),
  outcome: z.enum(["appropriate", "inappropriate"]),
  note: z.string().nullable(),
});
