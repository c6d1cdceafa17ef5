import { sql } from "drizzle-orm";
import { bigint, index, jsonb, pgEnum, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { roleEnum } from "./auth.ts";
import { id } from "./columns.ts";

export const auditOutcomeEnum = pgEnum("audit_outcome", ["allowed", "denied", "error"]);

/**
 * Append-only audit trail (HIPAA 45 CFR 164.312(b)). Ids only, never names or other PHI.
 * `details` holds small non-PHI facts (counts, reasons codes). The application's database role may
 * only INSERT and SELECT; a trigger refuses UPDATE, DELETE and TRUNCATE for everyone (migration
 * `0003_audit_append_only`). Tamper evidence comes from {@link auditChain}.
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
    index("audit_events_org_idx").on(t.organizationId, t.occurredAt),
  ],
);

/**
 * Hash chain over `audit_events`, appended in sealing order by the background sealer
 * (`server/audit/chain.ts`; one sealer at a time through a Postgres advisory lock), so request
 * handlers only INSERT events and never wait on a chain lock. Link `seq` covers event `event_id`:
 * `hash = SHA-256(prev_hash | seq | event_id | canonical event)`; `seq` starts at 1 and has no gaps.
 * No foreign key to the event on purpose: a deleted event leaves its link behind, which is how
 * `audit verify` finds it. Append-only like `audit_events` (trigger + grants).
 */
export const auditChain = pgTable("audit_chain", {
  seq: bigint("seq", { mode: "number" }).primaryKey(),
  eventId: uuid("event_id").notNull().unique(),
  /** Hex SHA-256 of the previous link (64 zeros before the first). */
  prevHash: text("prev_hash").notNull(),
  /** Hex SHA-256 of this link. */
  hash: text("hash").notNull(),
  sealedAt: timestamp("sealed_at", { withTimezone: true, mode: "date" })
    .notNull()
    .default(sql`now()`),
});
