import type { AppConfig } from "../config.ts";

/**
 * Server-side delivery rules of the reminder queue. They live on the server, not in the cron, so
 * every worker on every machine applies the same retry budget and backoff.
 */
export interface ReminderSettings {
  /** Claims (delivery attempts) before a reminder becomes `failed`, 1–20 (default 5). */
  maxAttempts: number;
  /** Delay before the first retry, seconds; attempt n waits `base * 2^(n-1)` (default 60). */
  backoffBaseSeconds: number;
  /** Upper bound of a retry delay, seconds (default 3600); never below the base. */
  backoffMaxSeconds: number;
}

/** The defaults of `HAVEN_REMINDER_MAX_ATTEMPTS`, `HAVEN_REMINDER_BACKOFF_SECONDS`, `HAVEN_REMINDER_BACKOFF_MAX_SECONDS`. */
export const DEFAULT_REMINDER_SETTINGS: ReminderSettings = {
  maxAttempts: 5,
  backoffBaseSeconds: 60,
  backoffMaxSeconds: 3_600,
};

/** Settings from validated configuration (the cap is raised to the base when set below it). */
export function reminderSettingsFrom(config: AppConfig): ReminderSettings {
  return {
    maxAttempts: config.HAVEN_REMINDER_MAX_ATTEMPTS,
    backoffBaseSeconds: config.HAVEN_REMINDER_BACKOFF_SECONDS,
    backoffMaxSeconds: Math.max(
      config.HAVEN_REMINDER_BACKOFF_SECONDS,
      config.HAVEN_REMINDER_BACKOFF_MAX_SECONDS,
    ),
  };
}
