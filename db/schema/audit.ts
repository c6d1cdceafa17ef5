import { index, jsonb, pgEnum, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { roleEnum } from "./auth.ts";
import { id } from "./columns.ts";

export const auditOutcomeEnum = pgEnum("audit_outcome", ["allowed", "denied", "error"]);

/**
 * Append-only audit trail (HIPAA 45 CFR 164.312(b)). Ids only, never names or other PHI.
 * `details` holds small non-PHI facts (counts, reasons codes).
 */
export const auditEvents = pgTable(
  "audit_events",
  {
    id: id(),
    occurredAt: timestamp("occurred_at", { withTimezone: true, mode: "date" }).notNull(),
    actorUserId: uuid("actor_user_id"),
    actorRole: roleEnum("actor_role"),
    sessionId: text("session_id"),
    organizationId: uuid("organization_id"),
    action: text("action").notNull(),
    resourceType: text("resource_type"),
    resourceId: text("resource_id"),
    patientId: uuid("patient_id"),
    outcome: auditOutcomeEnum("outcome").notNull(),
    reason: text("reason"),
    ip: text("ip"),
    requestId: text("request_id"),
    details: jsonb("details").$type<Record<string, string | number | boolean | null>>(),
  },
  (t) => [
    index("audit_events_patient_idx").on(t.patientId, t.occurredAt),
    index("audit_events_actor_idx").on(t.actorUserId, t.occurredAt),
    index("audit_events_time_idx").on(t.occurredAt),
  ],
);
