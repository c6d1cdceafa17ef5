import { z } from "zod";
import { ROLES } from "./roles.ts";

export const loginInput = z.strictObject({
  email: z.string().trim().min(3).max(254).email(),
  /** NIST 800-63B allows up to at least 64 characters; Haven accepts 128. */
  password: z.string().min(1).max(128),
});

export const sessionUserOutput = z.object({
  id: z.uuid(),
  role: z.enum(ROLES),
  organizationId: z.uuid(),
  patientId: z.uuid().nullable(),
  practitionerId: z.uuid().nullable(),
});

export const loginOutput = z.object({
  token: z.string(),
  expiresAt: z.date(),
  user: z.object({ id: z.uuid(), role: z.enum(ROLES), organizationId: z.uuid() }),
});

export const meOutput = z.object({
  user: sessionUserOutput,
  mfaVerified: z.boolean(),
});
