/**
 * The appointment lifecycle as one pure transition table (FHIR Appointment status subset):
 *
 * ```
 *              reschedule (same practitioner, new time)
 *              ┌────┐
 *              ▼    │
 *  book ──▶ booked ─┴─ checkIn ──▶ checked_in ── complete ──▶ completed
 *              │  └─ markNoShow ──▶ no_show            │
 *              └──── cancel ───▶ cancelled ◀── cancel ─┘
 * ```
 *
 * Decisions: `complete` needs a check-in first (the front desk records arrival); `markNoShow` only
 * from `booked` (a checked-in patient came) and only once the visit has started (enforced by the
 * service); `cancel` from `checked_in` is for a visit called off after arrival (staff only: patients
 * cancel `booked` visits before the cutoff). `completed`, `cancelled` and `no_show` are terminal.
 */
export const APPOINTMENT_STATES = [
  "booked",
  "checked_in",
  "completed",
  "cancelled",
  "no_show",
] as const;
export type AppointmentState = (typeof APPOINTMENT_STATES)[number];

export const APPOINTMENT_ACTIONS = [
  "reschedule",
  "cancel",
  "checkIn",
  "complete",
  "markNoShow",
] as const;
export type AppointmentAction = (typeof APPOINTMENT_ACTIONS)[number];

const TABLE: Record<AppointmentState, Partial<Record<AppointmentAction, AppointmentState>>> = {
  booked: {
    reschedule: "booked",
    cancel: "cancelled",
    checkIn: "checked_in",
    markNoShow: "no_show",
  },
  checked_in: { complete: "completed", cancel: "cancelled" },
  completed: {},
  cancelled: {},
  no_show: {},
};

export type Transition = { ok: true; to: AppointmentState } | { ok: false; message: string };

const VERB: Record<AppointmentAction, string> = {
  reschedule: "reschedule",
  cancel: "cancel",
  checkIn: "check in",
  complete: "complete",
  markNoShow: "mark as no-show",
};

const LABEL: Record<AppointmentState, string> = {
  booked: "booked",
  checked_in: "checked in",
  completed: "completed",
  cancelled: "cancelled",
  no_show: "marked as a no-show",
};

/** Where `action` takes an appointment in state `from`, or why it may not. */
export function transition(from: AppointmentState, action: AppointmentAction): Transition {
  const to = TABLE[from][action];
  if (to) return { ok: true, to };
  const hint =
    action === "complete" && from === "booked"
      ? " (check the patient in first)"
      : action === "markNoShow" && from === "checked_in"
        ? " (the patient has checked in)"
        : "";
  return {
    ok: false,
    message: `Cannot ${VERB[action]} an appointment that is ${LABEL[from]}${hint}`,
  };
}

/** States in which an appointment holds its time (the exclusion constraint's predicate). */
export const ACTIVE_STATES: readonly AppointmentState[] = ["booked", "checked_in"];
