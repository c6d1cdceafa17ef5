import { z } from "zod";

/**
 * Configuration of the reminder cron (`npm run reminders`): one zod schema over `process.env`,
 * parsed at start; every bad variable is named and the process exits with code 2. The API key is
 * never echoed.
 */
const intIn = (min: number, max: number, fallback: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .default(String(fallback))
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const cronEnvSchema = z.object({
  /** Base URL of a Haven server, e.g. `https://haven.example.org`. */
  HAVEN_URL: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }),
  /** A `service` API key (`hk_…`) with the `reminders` scope, sent as `Authorization: Bearer`. */
  HAVEN_API_KEY: z
    .string({ error: "is required (a service API key with the reminders scope)" })
    .min(1, "is required (a service API key with the reminders scope)"),
  /** `smtp://user:pass@host:587` or `smtps://…` (nodemailer pool); unset logs ids only. */
  HAVEN_SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, "must be an smtp:// or smtps:// URL")
    .optional(),
  HAVEN_MAIL_FROM: z.string().min(3).default("Haven <no-reply@haven.invalid>"),
  /** Reminders sent at once by this process. */
  HAVEN_REMINDER_CONCURRENCY: intIn(1, 64, 4),
  /** Reminders claimed per `claimDue` call. */
  HAVEN_REMINDER_BATCH_SIZE: intIn(1, 500, 50),
  /** Claim lease, seconds: a claim this process has not reported by then may go to another one. */
  HAVEN_REMINDER_LEASE_SECONDS: intIn(1, 3_600, 300),
  /** BCP 47 locale for the date in the message (`en-US`, `de-DE`, `fr-CA`). */
  HAVEN_REMINDER_LOCALE: z
    .string()
    .default("en-US")
    .refine((l) => {
      try {
        return Intl.DateTimeFormat.supportedLocalesOf([l]).length === 1;
      } catch {
        return false;
      }
    }, "must be a locale this Node.js supports, e.g. en-US"),
  /** Optional JSON file `{ subject, text, html }` with `{{placeholders}}` replacing the default wording. */
  HAVEN_REMINDER_TEMPLATE: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type CronConfig = z.infer<typeof cronEnvSchema>;

/** Thrown when the environment does not describe a runnable cron; lists every problem. */
export class CronConfigError extends Error {
  override name = "CronConfigError";
}

/**
 * Parse and validate the cron's environment.
 * @throws CronConfigError naming every invalid variable (values are never quoted)
 */
export function loadCronConfig(env: NodeJS.ProcessEnv = process.env): CronConfig {
  const parsed = cronEnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new CronConfigError(`Invalid reminder cron configuration:\n${lines.join("\n")}`);
  }
  return parsed.data;
}

/**
 * Parse a loop interval such as `60s`, `5m`, `1h` or `500ms` into milliseconds (100 ms – 24 h).
 * @throws CronConfigError for anything else
 */
export function parseInterval(text: string): number {
  const m = /^(\d{1,9})(ms|s|m|h)$/.exec(text.trim());
  const ms = m ? Number(m[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as "s"] : NaN;
  if (!m || !(ms >= 100 && ms <= 86_400_000)) {
    throw new CronConfigError(
      `--every: "${text}" is not an interval like 60s, 5m or 1h (100ms to 24h)`,
    );
  }
  return ms;
}
