import { v7 as uuidv7 } from "uuid";
import { appointments, patients, reminders } from "../../../db/schema/index.ts";
import type { Demographics } from "../../kernel/demographics.ts";
import { type Deps, makePractitioner, sampleDemographics } from "../../test/factory.ts";

/** A visit reason that must never appear in a reminder (minimum necessary). */
export const SECRET_REASON = "Oncology follow-up after biopsy";

/** Length of a seeded visit and the gap between a practitioner's visits. */
const SLOT_MS = 10 * 60_000;

export interface SeededReminder {
  reminderId: string;
  appointmentId: string;
  patientId: string;
  practitionerId: string;
  email: string | null;
  demographics: Demographics;
  startsAt: Date;
  dueAt: Date;
  offsetMinutes: number;
}

export interface SeedOptions {
  organizationId: string;
  count: number;
  /** The instant reminders must be due at (usually `h.clock.now`). */
  now: Date;
  /**
   * Start of visit i (default: `now + 2 h + 10 min · (i mod 100)` on practitioner ⌊i/100⌋, i.e.
   * at most 18.5 h ahead, so the default 24 h reminder is due).
   */
  startsAt?: (i: number) => Date;
  /** Reminder offset before the visit, minutes (default 1440: due 22 h before `now`). */
  offsetMinutes?: number;
  /** Change patient i's demographics. */
  demographics?: (i: number, d: Demographics) => Demographics;
}

/**
 * Bulk-create `count` patients (encrypted demographics, distinct e-mail addresses), booked visits
 * and one due `email` reminder each, the way the appointments service leaves them after a booking
 * (`pending`, `next_attempt_at = due_at`). Visits never overlap per practitioner (100 per
 * practitioner), so the exclusion constraint holds.
 */
export async function seedDueReminders(deps: Deps, o: SeedOptions): Promise<SeededReminder[]> {
  const offsetMinutes = o.offsetMinutes ?? 1440;
  const practitionerIds: string[] = [];
  for (let p = 0; p * 100 < o.count; p++) {
    practitionerIds.push(await makePractitioner(deps, o.organizationId));
  }
  const seeded: SeededReminder[] = [];
  for (let i = 0; i < o.count; i++) {
    const base = sampleDemographics({ email: `patient${i}.${uuidv7().slice(-12)}@example.test` });
    const demographics = o.demographics ? o.demographics(i, base) : base;
    const startsAt =
      o.startsAt?.(i) ?? new Date(o.now.getTime() + 2 * 3_600_000 + (i % 100) * SLOT_MS);
    seeded.push({
      reminderId: uuidv7(),
      appointmentId: uuidv7(),
      patientId: uuidv7(),
      practitionerId: practitionerIds[Math.floor(i / 100)] as string,
      email: demographics.email,
      demographics,
      startsAt,
      dueAt: new Date(startsAt.getTime() - offsetMinutes * 60_000),
      offsetMinutes,
    });
  }
  for (let from = 0; from < seeded.length; from += 500) {
    const chunk = seeded.slice(from, from + 500);
    await deps.db.insert(patients).values(
      chunk.map((s) => ({
        id: s.patientId,
        organizationId: o.organizationId,
        demographics: deps.crypto.seal("patients", "demographics", s.patientId, s.demographics),
      })),
    );
    await deps.db.insert(appointments).values(
      chunk.map((s) => ({
        id: s.appointmentId,
        organizationId: o.organizationId,
        patientId: s.patientId,
        practitionerId: s.practitionerId,
        startsAt: s.startsAt,
        endsAt: new Date(s.startsAt.getTime() + SLOT_MS),
        status: "booked" as const,
        reason: deps.crypto.seal("appointments", "reason", s.appointmentId, SECRET_REASON),
      })),
    );
    await deps.db.insert(reminders).values(
      chunk.map((s) => ({
        id: s.reminderId,
        organizationId: o.organizationId,
        appointmentId: s.appointmentId,
        channel: "email" as const,
        offsetMinutes,
        dueAt: s.dueAt,
        nextAttemptAt: s.dueAt,
        status: "pending" as const,
      })),
    );
  }
  return seeded;
}
