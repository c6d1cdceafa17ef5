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
  /** Directory for the embedded database and the generated key file. */
  HAVEN_DATA_DIR: z.string().min(1).default(".haven"),
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
  /** Absolute session lifetime in hours, all roles. */
  HAVEN_SESSION_TTL_HOURS: z.coerce
    .number()
    .positive()
    .max(24 * 30)
    .default(12),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
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
  if (Boolean(config.HAVEN_PHI_KEYS) !== Boolean(config.HAVEN_BLIND_INDEX_KEY)) {
    throw new ConfigError(
      "Invalid configuration:\n  HAVEN_PHI_KEYS and HAVEN_BLIND_INDEX_KEY must be set together (or neither, for the embedded key file).",
    );
  }
  return config;
}
