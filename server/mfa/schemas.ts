import { z } from "zod";

/** Wire shapes of the `auth.mfa.*` procedures (TOTP, RFC 6238, and recovery codes). */

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
