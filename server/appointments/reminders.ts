import { and, eq, inArray, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { reminders } from "../../db/schema/index.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import type { SchedulingSettings } from "./settings.ts";

/**
 * Reminder hooks of the appointment lifecycle. Always called inside the transaction that changes
 * the appointment, so a reminder exists exactly when its visit does (nothing half-written).
 * The reminder cron (`workers/reminders/`) claims and delivers the rows; see `db/schema/reminders.ts`.
 */

/** Reminder states a lifecycle change may still supersede (sent/failed/cancelled are history). */
const OPEN = ["pending", "claimed"] as const;

/**
 * Create or replace the reminder rows of a (re)scheduled appointment: one per configured
 * (offset, channel), due `offset` minutes before `startsAt`. A row whose due time is already past
 * at `now` would fire late and is not created (or, when replacing, is cancelled). Replacing resets
 * the row to `pending` with zero attempts and bumps its `version`, so a worker still holding a claim
 * on the old time cannot report it as delivered.
 * @returns how many rows are pending afterwards
 */
export async function scheduleReminders(
  tx: Executor,
  appointment: { id: string; organizationId: string; startsAt: Date },
  settings: SchedulingSettings,
  now: Date,
): Promise<number> {
  let pending = 0;
  for (const offsetMinutes of settings.reminderOffsetsMinutes) {
    const dueAt = new Date(appointment.startsAt.getTime() - offsetMinutes * 60_000);
    for (const channel of settings.reminderChannels) {
      if (dueAt.getTime() <= now.getTime()) {
        await tx
          .update(reminders)
          .set({
            status: "cancelled",
            leaseUntil: null,
            lastError: "due_before_booking",
            version: sql`${reminders.version} + 1`,
            updatedAt: now,
          })
          .where(
            and(
              eq(reminders.appointmentId, appointment.id),
              eq(reminders.offsetMinutes, offsetMinutes),
              eq(reminders.channel, channel),
            ),
          );
        continue;
      }
      pending++;
      await tx
        .insert(reminders)
        .values({
          id: uuidv7(),
          organizationId: appointment.organizationId,
          appointmentId: appointment.id,
          channel,
          offsetMinutes,
          dueAt,
          nextAttemptAt: dueAt,
          status: "pending",
          createdAt: now,
          updatedAt: now,
        })
        .onConflictDoUpdate({
          target: [reminders.appointmentId, reminders.offsetMinutes, reminders.channel],
          set: {
            dueAt,
            nextAttemptAt: dueAt,
            status: "pending",
            attempts: 0,
            leaseUntil: null,
            lastError: null,
            providerMessageId: null,
            sentAt: null,
            version: sql`${reminders.version} + 1`,
            updatedAt: now,
          },
        });
    }
  }
  // Offsets or channels removed from the configuration since the booking no longer apply.
  const wanted = new Set(
    settings.reminderOffsetsMinutes.flatMap((m) =>
      settings.reminderChannels.map((c) => `${m}:${c}`),
    ),
  );
  const open = await tx
    .select({
      id: reminders.id,
      offsetMinutes: reminders.offsetMinutes,
      channel: reminders.channel,
    })
    .from(reminders)
    .where(and(eq(reminders.appointmentId, appointment.id), inArray(reminders.status, [...OPEN])));
  const stale = open.filter((r) => !wanted.has(`${r.offsetMinutes}:${r.channel}`)).map((r) => r.id);
  if (stale.length > 0) {
    await tx
      .update(reminders)
      .set({
        status: "cancelled",
        leaseUntil: null,
        lastError: "offset_removed",
        version: sql`${reminders.version} + 1`,
        updatedAt: now,
      })
      .where(inArray(reminders.id, stale));
  }
  return pending;
}

/**
 * Cancel the open (pending or claimed) reminders of an appointment that was cancelled, checked in,
 * completed or marked as a no-show. Sent and failed rows stay as history.
 * @returns how many rows were cancelled
 */
export async function cancelReminders(
  tx: Executor,
  appointmentId: string,
  now: Date,
  why: "appointment_cancelled" | "visit_under_way" | "visit_over",
): Promise<number> {
  const rows = await tx
    .update(reminders)
    .set({
      status: "cancelled",
      leaseUntil: null,
      lastError: why,
      version: sql`${reminders.version} + 1`,
      updatedAt: now,
    })
    .where(and(eq(reminders.appointmentId, appointmentId), inArray(reminders.status, [...OPEN])))
    .returning({ id: reminders.id });
  return rows.length;
}
