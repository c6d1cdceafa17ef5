import { sql } from "drizzle-orm";
import {
  check,
  index,
  integer,
  pgEnum,
  pgTable,
  text,
  timestamp,
  unique,
  uuid,
} from "drizzle-orm/pg-core";
import { appointments } from "./appointments.ts";
import { createdAt, id, updatedAt } from "./columns.ts";
import { organizations } from "./organizations.ts";

export const reminderStatusEnum = pgEnum("reminder_status", [
  "pending",
  "claimed",
  "sent",
  "failed",
  "cancelled",
]);
export const reminderChannelEnum = pgEnum("reminder_channel", ["email", "sms"]);

/**
 * Appointment reminders: one row per (appointment, offset, channel). Written by the appointments
 * service in the SAME transaction as the appointment change (book/reschedule create or replace the
 * rows; cancel, check-in, complete and no-show cancel the open ones), and worked by the reminder
 * cron (claim → send → complete/fail). Holds ids, times and error codes only, never PHI.
 *
 * Columns:
 * - `offset_minutes`: how long before `appointments.starts_at` the reminder is due (1440 = 24 h).
 * - `due_at`: `starts_at - offset` (UTC); recomputed when the appointment is rescheduled.
 * - `status`: `pending` (waiting for `next_attempt_at`), `claimed` (a worker holds it until
 *   `lease_until`; an expired lease makes it claimable again), `sent` (delivered; `sent_at`,
 *   `provider_message_id`), `failed` (gave up after the cron's maximum attempts; terminal),
 *   `cancelled` (the visit was cancelled, moved so late that the reminder is moot, or is under
 *   way/over; terminal).
 * - `attempts`: delivery attempts so far; a retryable failure returns the row to `pending` with a
 *   later `next_attempt_at` (backoff) and `last_error`.
 * - `next_attempt_at`: earliest time a worker may claim it (starts equal to `due_at`).
 * - `lease_until`: end of the current claim; only meaningful while `claimed`.
 * - `last_error`: a short machine code of the last failure (e.g. `smtp_timeout`) or, for a
 *   `cancelled` row, why (`appointment_cancelled`, `visit_under_way`, `visit_over`,
 *   `due_before_booking`, `offset_removed`); never PHI.
 * - `version`: bumped whenever the appointments service replaces or cancels the row; a worker must
 *   complete/fail with the version it claimed, so a report about a superseded reminder is refused.
 * - `organization_id`: tenant key (ARCHITECTURE §2/§4).
 */
export const reminders = pgTable(
  "reminders",
  {
    id: id(),
    organizationId: uuid("organization_id")
      .notNull()
      .references(() => organizations.id),
    appointmentId: uuid("appointment_id")
      .notNull()
      .references(() => appointments.id, { onDelete: "cascade" }),
    channel: reminderChannelEnum("channel").notNull(),
    offsetMinutes: integer("offset_minutes").notNull(),
    dueAt: timestamp("due_at", { withTimezone: true, mode: "date" }).notNull(),
    status: reminderStatusEnum("status").notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true, mode: "date" }).notNull(),
    leaseUntil: timestamp("lease_until", { withTimezone: true, mode: "date" }),
    lastError: text("last_error"),
    providerMessageId: text("provider_message_id"),
    sentAt: timestamp("sent_at", { withTimezone: true, mode: "date" }),
    version: integer("version").notNull().default(1),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique("reminders_appointment_offset_channel").on(t.appointmentId, t.offsetMinutes, t.channel),
    check("reminders_offset_positive", sql`${t.offsetMinutes} > 0`),
    check("reminders_attempts_nonnegative", sql`${t.attempts} >= 0`),
    index("reminders_claimable_idx").on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    index("reminders_lease_idx").on(t.leaseUntil).where(sql`${t.status} = 'claimed'`),
    index("reminders_org_idx").on(t.organizationId, t.dueAt),
  ],
);
