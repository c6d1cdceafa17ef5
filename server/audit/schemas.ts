import { z } from "zod";
import { AUDIT_ACTIONS } from "../kernel/audit-actions.ts";

const range = {
  /** Inclusive lower bound (UTC instant). */
  from: z.date().optional(),
  /** Exclusive upper bound (UTC instant). */
  to: z.date().optional(),
  limit: z.number().int().min(1).max(200).default(100),
  /** Opaque cursor from the previous page's `nextCursor`. */
  cursor: z.string().max(200).optional(),
};

/** `audit.forPatient` input. */
export const forPatientInput = z
  .strictObject({ patientId: z.uuid(), ...range })
  .refine((v) => !v.from || !v.to || v.from < v.to, {
    message: "from must be before to",
    path: ["to"],
  });

/** One disclosure: who touched the record, when, what and why. */
export const disclosureItem = z.object({
  id: z.uuid(),
  occurredAt: z.date(),
  actor: z.object({
    userId: z.uuid().nullable(),
    role: z.enum(["patient", "clinician", "staff", "admin", "service"]).nullable(),
    /** The workforce member's name when the account is a practitioner's. */
    practitionerName: z.string().nullable(),
  }),
  action: z.string(),
  outcome: z.enum(["allowed", "denied", "error"]),
  resourceType: z.string().nullable(),
  /** Why access was allowed: self, care_relationship, organization, break_glass (or null). */
  basis: z.string().nullable(),
  /** Set when the access was made under an emergency grant: the grant and its stated reason. */
  breakGlass: z.object({ grantId: z.uuid(), reason: z.string().nullable() }).nullable(),
  /** Admins only: where the request came from. */
  ip: z.string().nullable().optional(),
  requestId: z.string().nullable().optional(),
});

export const forPatientOutput = z.object({
  items: z.array(disclosureItem),
  nextCursor: z.string().nullable(),
});

/** `audit.search` input. */
export const searchInput = z
  .strictObject({
    actorUserId: z.uuid().optional(),
    action: z.enum(AUDIT_ACTIONS).optional(),
    outcome: z.enum(["allowed", "denied", "error"]).optional(),
    patientId: z.uuid().optional(),
    ...range,
  })
  .refine((v) => !v.from || !v.to || v.from < v.to, {
    message: "from must be before to",
    path: ["to"],
  });

export const auditEventOutput = z.object({
  id: z.uuid(),
  occurredAt: z.date(),
  actorUserId: z.uuid().nullable(),
  actorRole: z.enum(["patient", "clinician", "staff", "admin", "service"]).nullable(),
  organizationId: z.uuid().nullable(),
  action: z.string(),
  outcome: z.enum(["allowed", "denied", "error"]),
  resourceType: z.string().nullable(),
  resourceId: z.string().nullable(),
  patientId: z.uuid().nullable(),
  reason: z.string().nullable(),
  ip: z.string().nullable(),
  requestId: z.string().nullable(),
  details: z
    .record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]))
    .nullable(),
});

export const searchOutput = z.object({
  items: z.array(auditEventOutput),
  nextCursor: z.string().nullable(),
});

const head = z.object({ seq: z.number().int().min(1), hash: z.string().regex(/^[0-9a-f]{64}$/) });

/** `audit.verify` input. */
export const verifyInput = z
  .strictObject({
    /** A chain head recorded earlier (the sealer's log line) that must still be in the chain. */
    anchor: head.optional(),
  })
  .optional();

export const verifyOutput = z.object({
  ok: z.boolean(),
  links: z.number().int(),
  sealed: z.number().int(),
  head: head.nullable(),
  firstBroken: z
    .object({ kind: z.string(), seq: z.number().int(), eventId: z.string().nullable() })
    .nullable(),
  problems: z.array(
    z.object({ kind: z.string(), seq: z.number().int(), eventId: z.string().nullable() }),
  ),
  problemCount: z.number().int(),
  unsealed: z.number().int(),
  durationMs: z.number(),
});
