import { z } from "zod";

export const appointmentStatus = z.enum([
  "booked",
  "checked_in",
  "completed",
  "cancelled",
  "no_show",
]);

export const listForPatientInput = z.strictObject({
  patientId: z.uuid(),
  /** Page size, 1–100 (default 50). */
  limit: z.number().int().min(1).max(100).default(50),
  /** Opaque cursor from a previous page's `nextCursor`. */
  cursor: z.string().max(200).optional(),
});

export const appointmentOutput = z.object({
  id: z.uuid(),
  organizationId: z.uuid(),
  patientId: z.uuid(),
  practitioner: z.object({ id: z.uuid(), name: z.string() }),
  /** UTC instants. */
  startsAt: z.date(),
  endsAt: z.date(),
  status: appointmentStatus,
  /** Decrypted visit reason; null when none or when the caller's role may not see it. */
  reason: z.string().nullable(),
  version: z.number().int(),
});

export const listForPatientOutput = z.object({
  items: z.array(appointmentOutput),
  nextCursor: z.string().nullable(),
});
