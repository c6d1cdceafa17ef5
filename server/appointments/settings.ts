import type { AppConfig } from "../config.ts";

/** Reminder delivery channels (mirror of the `reminder_channel` enum). */
export type ReminderChannel = "email" | "sms";

/** Appointment rules that come from configuration (README "Configuration"). */
export interface SchedulingSettings {
  /** Reminder offsets before the visit, minutes, distinct, largest first (default 1440, 120). */
  reminderOffsetsMinutes: readonly number[];
  /** Channels a reminder row is created for, per offset (default email). */
  reminderChannels: readonly ReminderChannel[];
  /** Patients may cancel/reschedule their own visit only until this many minutes before it. */
  patientCancelCutoffMinutes: number;
  /**
   * Live feeds re-read the change log at least this often even without a NOTIFY (ms; a lost
   * notification then costs latency, never data). Not an env setting; tests raise it to prove
   * that delivery comes from LISTEN/NOTIFY.
   */
  feedPollMs: number;
}

/** The defaults of `HAVEN_REMINDER_OFFSETS`, `HAVEN_REMINDER_CHANNELS`, `HAVEN_PATIENT_CANCEL_CUTOFF_HOURS`. */
export const DEFAULT_SCHEDULING_SETTINGS: SchedulingSettings = {
  reminderOffsetsMinutes: [24 * 60, 2 * 60],
  reminderChannels: ["email"],
  patientCancelCutoffMinutes: 24 * 60,
  feedPollMs: 15_000,
};

/** Settings from validated configuration. */
export function schedulingSettingsFrom(config: AppConfig): SchedulingSettings {
  return {
    reminderOffsetsMinutes: config.HAVEN_REMINDER_OFFSETS,
    reminderChannels: config.HAVEN_REMINDER_CHANNELS,
    patientCancelCutoffMinutes: Math.round(config.HAVEN_PATIENT_CANCEL_CUTOFF_HOURS * 60),
    feedPollMs: DEFAULT_SCHEDULING_SETTINGS.feedPollMs,
  };
}
