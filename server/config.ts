import { z } from "zod";

/**
 * Haven's runtime configuration: one zod schema over `process.env`, parsed once at boot.
 * Every invalid variable is named in the thrown {@link ConfigError}; nothing skips validation.
 */
const booleanString = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

const envSchema = z.object({
  NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: z
    .string()
    .regex(/^\d+$/, "must be a port number (0 = any free port)")
    .default("3000")
    .transform(Number)
    .pipe(z.number().int().min(0).max(65535)),
  /** postgres://… selects the `postgres` driver; unset selects embedded PGlite. */
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
    .optional(),
  /**
   * Direct PostgreSQL URL when DATABASE_URL points at a transaction pooler (PgBouncer): LISTEN/NOTIFY
   * fan-out and migrations use it; queries go through the pooler without prepared statements.
   */
  DATABASE_DIRECT_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
    .optional(),
  /** Directory for the embedded database and the generated key file. */
  HAVEN_DATA_DIR: z.string().min(1).default(".haven"),
  /**
   * Embedded PGlite only: its PostgreSQL `shared_buffers`, MB (default 32; PGlite's own is 128, all
   * resident for the life of the process). bench/results/optimisations.md §9.
   */
  HAVEN_PGLITE_SHARED_BUFFERS_MB: z.coerce.number().int().min(1).max(4096).default(32),
  HAVEN_MIGRATE_ON_START: booleanString.default(true),
  /** `auto`: load demo data and accounts into an empty embedded database. */
  HAVEN_DEMO: z.enum(["auto", "true", "false"]).default("auto"),
  /** Comma-separated `keyId:base64(32 bytes)`; the first key encrypts, all decrypt. */
  HAVEN_PHI_KEYS: z.string().min(1).optional(),
  /** base64 of 32 bytes: the HMAC key from which per-field blind-index keys are derived. */
  HAVEN_BLIND_INDEX_KEY: z.string().min(1).optional(),
  /**
   * Comma-separated origins allowed to send cookie-authenticated mutations (CSRF defence).
   * The server's own origin is always allowed.
   */
  HAVEN_ALLOWED_ORIGINS: z
    .string()
    .default("")
    .transform((s) =>
      s
        .split(",")
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.url())),
  /**
   * General API rate limits, requests per window per bucket (OWASP ASVS 11.1.4): anonymous callers
   * are counted per IP, signed-in users per session, service API keys per key (a much larger
   * budget: reminder workers and integrations batch legitimately). Counters live in the database,
   * so the limits hold across instances. `0` turns the limiter off.
   */
  HAVEN_RATE_LIMIT_IP: z.coerce.number().int().min(0).max(1_000_000).default(300),
  HAVEN_RATE_LIMIT_SESSION: z.coerce.number().int().min(0).max(1_000_000).default(600),
  HAVEN_RATE_LIMIT_API_KEY: z.coerce.number().int().min(0).max(10_000_000).default(20_000),
  /** Rate-limit window, seconds. */
  HAVEN_RATE_LIMIT_WINDOW_SECONDS: z.coerce.number().int().min(1).max(3_600).default(60),
  /**
   * Reverse proxies / load balancers whose `X-Forwarded-For` (and `-Proto`, `-Host`) Haven believes:
   * comma-separated IP addresses or CIDR ranges (e.g. `10.0.0.5,10.0.1.0/24`). Empty (default): the
   * client IP is the TCP peer and forwarded headers are ignored, because anyone can send them
   * (CWE-348, use of a less trusted source; e.g. CVE-2020-28483 in gin: trusting them from
   * everyone lets an attacker choose the IP the login and rate-limit throttles count, and forge
   * the address in the audit trail). Set it to exactly the proxies in front of Haven: the client IP
   * is then the right-most `X-Forwarded-For` entry not in this list.
   */
  HAVEN_TRUST_PROXY: z
    .string()
    .default("")
    .transform((s) =>
      s
        .split(",")
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .pipe(
      z.array(
        z.union([z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()], {
          error: "must be IP addresses or CIDR ranges, comma-separated",
        }),
      ),
    ),
  /**
   * Read-only emergency mode (45 CFR 164.308(a)(7)(ii)(C); ADR 0013): records are read (and every
   * read audited) while every clinical, scheduling and account change answers 503 `read_only` with
   * `Retry-After`. Sign-in, sign-out, MFA verification and break-the-glass keep working. Migrations
   * and demo seeding are skipped at startup. /readyz reports `mode`.
   */
  HAVEN_READ_ONLY: booleanString.default(false),
  /** Longest time SIGTERM/SIGINT waits for in-flight requests before closing sockets, ms. */
  HAVEN_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(8_000),
  /** Bearer token for GET /metrics; unset = loopback clients only. */
  HAVEN_METRICS_TOKEN: z.string().min(16, "use at least 16 characters").optional(),
  /** Absolute session lifetime in hours, all roles. */
  HAVEN_SESSION_TTL_HOURS: z.coerce
    .number()
    .positive()
    .max(24 * 30)
    .default(12),
  /** Idle timeout (automatic logoff) for clinician/staff/admin sessions, minutes (45 CFR 164.312(a)(2)(iii)). */
  HAVEN_IDLE_TIMEOUT_MINUTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 60)
    .default(15),
  /** SMTP URL for outgoing mail (`smtp://user:pass@host:587`, `smtps://…`); unset logs mail ids only. */
  HAVEN_SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, "must be an smtp:// or smtps:// URL")
    .optional(),
  /** Sender of Haven's e-mails (password reset, invitations, reminders). */
  HAVEN_MAIL_FROM: z.string().min(3).default("Haven <no-reply@haven.invalid>"),
  /** Public URL of the portal, used in links inside e-mails (invitations, password reset). */
  HAVEN_PUBLIC_URL: z.url().optional(),
  /**
   * Public URL of the staff admin panel, used in workforce invitation links; defaults to
   * `HAVEN_PUBLIC_URL` + `/admin` (the panel Haven serves itself).
   */
  HAVEN_PANEL_URL: z.url().optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Break-the-glass grant lifetime, minutes (emergency access is time-boxed; 45 CFR 164.312(a)(2)(ii)). */
  HAVEN_BREAK_GLASS_MINUTES: z.coerce
    .number()
    .int()
    .min(5)
    .max(24 * 60)
    .default(60),
  /**
   * How often this server records, in the database, which PHI keys it holds (ms). `keys rotate`
   * treats a server as live for 3 periods after its last heartbeat.
   */
  HAVEN_INSTANCE_HEARTBEAT_MS: z.coerce.number().int().min(100).max(60_000).default(5000),
  /** How often the background sealer extends the audit hash chain, ms (0 disables it in this process). */
  HAVEN_AUDIT_SEAL_INTERVAL_MS: z.coerce.number().int().min(0).max(3_600_000).default(5000),
  /**
   * Appointment reminder offsets before the visit: comma-separated `<n>m`, `<n>h` or `<n>d`
   * (default 24 h and 2 h), parsed to distinct minutes, largest first.
   */
  HAVEN_REMINDER_OFFSETS: z
    .string()
    .default("24h,2h")
    .transform((s, ctx) => {
      const minutes = new Set<number>();
      for (const part of s.split(",").map((p) => p.trim())) {
        if (part === "") continue;
        const m = /^(\d{1,5})([mhd])$/.exec(part);
        const n = m
          ? Number(m[1]) * ({ m: 1, h: 60, d: 1440 } as const)[m[2] as "m" | "h" | "d"]
          : 0;
        if (!m || n < 1 || n > 30 * 1440) {
          ctx.addIssue({
            code: "custom",
            message: `"${part}" is not an offset like 24h, 90m or 2d (1 minute to 30 days)`,
          });
          return z.NEVER;
        }
        minutes.add(n);
      }
      if (minutes.size > 5) {
        ctx.addIssue({ code: "custom", message: "at most 5 reminder offsets" });
        return z.NEVER;
      }
      return [...minutes].sort((a, b) => b - a);
    }),
  /** Reminder channels created for each booking, comma-separated (`email`, `sms`). */
  HAVEN_REMINDER_CHANNELS: z
    .string()
    .default("email")
    .transform((s) => [
      ...new Set(
        s
          .split(",")
          .map((c) => c.trim())
          .filter(Boolean),
      ),
    ])
    .pipe(z.array(z.enum(["email", "sms"])).min(1, "name at least one channel")),
  /** Patients may cancel or reschedule their own appointment only until this many hours before it. */
  HAVEN_PATIENT_CANCEL_CUTOFF_HOURS: z.coerce
    .number()
    .min(0)
    .max(24 * 30)
    .default(24),
  /** Reminder delivery attempts (claims) before a reminder becomes `failed` (dead letter). */
  HAVEN_REMINDER_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(5),
  /** First retry delay after a failed delivery, seconds; doubles per attempt. */
  HAVEN_REMINDER_BACKOFF_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
  /** Longest retry delay, seconds. */
  HAVEN_REMINDER_BACKOFF_MAX_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(7 * 86_400)
    .default(3_600),
});

export type AppConfig = z.infer<typeof envSchema>;

/** Thrown when the environment does not describe a runnable Haven; the message lists every problem. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Parse and validate configuration.
 * @param env the environment to read (defaults to `process.env`)
 * @returns the typed configuration
 * @throws ConfigError naming every invalid variable, or missing keys under NODE_ENV=production
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join("\n")}`);
  }
  const config = parsed.data;
  if (
    config.NODE_ENV === "production" &&
    (!config.HAVEN_PHI_KEYS || !config.HAVEN_BLIND_INDEX_KEY)
  ) {
    throw new ConfigError(
      "Invalid configuration:\n  HAVEN_PHI_KEYS and HAVEN_BLIND_INDEX_KEY are required when NODE_ENV=production " +
        "(Haven will not generate encryption keys for a production deployment; see README 'Configuration').",
    );
  }
  if (config.DATABASE_DIRECT_URL && !config.DATABASE_URL) {
    throw new ConfigError(
      "Invalid configuration:\n  DATABASE_DIRECT_URL needs DATABASE_URL (the pooler it bypasses).",
    );
  }
  if (Boolean(config.HAVEN_PHI_KEYS) !== Boolean(config.HAVEN_BLIND_INDEX_KEY)) {
    throw new ConfigError(
      "Invalid configuration:\n  HAVEN_PHI_KEYS and HAVEN_BLIND_INDEX_KEY must be set together (or neither, for the embedded key file).",
    );
  }
  return config;
}
