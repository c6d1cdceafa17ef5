import { sql } from "drizzle-orm";
import {
  check,
  date,
  index,
  integer,
  pgEnum,
  pgTable,
  smallint,
  time,
  uuid,
} from "drizzle-orm/pg-core";
import { createdAt, id, updatedAt } from "./columns.ts";
import { organizations } from "./organizations.ts";
import { practitioners } from "./patients.ts";

/**
 * A practitioner's regular working hours: one row per (weekday, window). Times are LOCAL wall-clock
 * times in the organization's IANA time zone (`organizations.timezone`), not instants, so "09:00"
 * stays 09:00 on both sides of a DST change. Slots are cut from each window every `slot_minutes`
 * (see `server/scheduling/slots.ts` for the DST rules). Workforce data, not PHI.
 */
export const availabilityRules = pgTable(
  "availability_rules",
  {
    id: id(),
    organizationId: uuid("organization_id")
      .notNull()
      .references(() => organizations.id),
    practitionerId: uuid("practitioner_id")
      .notNull()
      .references(() => practitioners.id, { onDelete: "cascade" }),
    /** ISO weekday: 1 = Monday … 7 = Sunday. */
    weekday: smallint("weekday").notNull(),
    /** Local wall-clock start (inclusive), `HH:MM:SS`. */
    startTime: time("start_time").notNull(),
    /** Local wall-clock end (exclusive), `HH:MM:SS`; after `start_time` (no overnight windows). */
    endTime: time("end_time").notNull(),
    /** Slot length in minutes. */
    slotMinutes: integer("slot_minutes").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check("availability_rules_weekday", sql`${t.weekday} BETWEEN 1 AND 7`),
    check("availability_rules_order", sql`${t.endTime} > ${t.startTime}`),
    check("availability_rules_slot", sql`${t.slotMinutes} BETWEEN 5 AND 480`),
    index("availability_rules_practitioner_idx").on(t.practitionerId, t.weekday),
  ],
);

export const availabilityExceptionKindEnum = pgEnum("availability_exception_kind", [
  "closed",
  "extra",
]);

/**
 * One-off changes to the weekly hours on a LOCAL date (organization time zone):
 * - `closed` without times: the whole day off; `closed` with times: that part of the day blocked;
 * - `extra` (times required): additional hours that day, cut into `slot_minutes` slots.
 */
export const availabilityExceptions = pgTable(
  "availability_exceptions",
  {
    id: id(),
    organizationId: uuid("organization_id")
      .notNull()
      .references(() => organizations.id),
    practitionerId: uuid("practitioner_id")
      .notNull()
      .references(() => practitioners.id, { onDelete: "cascade" }),
    /** Local calendar date, `YYYY-MM-DD`. */
    date: date("date", { mode: "string" }).notNull(),
    kind: availabilityExceptionKindEnum("kind").notNull(),
    startTime: time("start_time"),
    endTime: time("end_time"),
    slotMinutes: integer("slot_minutes"),
    createdAt: createdAt(),
  },
  (t) => [
    check(
      "availability_exceptions_times",
      sql`(${t.startTime} IS NULL AND ${t.endTime} IS NULL AND ${t.kind} = 'closed') OR (${t.startTime} IS NOT NULL AND ${t.endTime} IS NOT NULL AND ${t.endTime} > ${t.startTime})`,
    ),
    check(
      "availability_exceptions_slot",
      sql`(${t.kind} = 'extra' AND ${t.slotMinutes} BETWEEN 5 AND 480) OR (${t.kind} = 'closed' AND ${t.slotMinutes} IS NULL)`,
    ),
    index("availability_exceptions_practitioner_idx").on(t.practitionerId, t.date),
  ],
);
