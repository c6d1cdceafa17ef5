import type { FastifyInstance } from "fastify";
import type { DestinationStream } from "pino";
import { type DatabaseHandle, openDatabase } from "../db/client.ts";
import { createLogger } from "../lib/logger.ts";
import { createMailTransport } from "../lib/mail.ts";
import { privacySettingsFrom } from "./access/settings.ts";
import { schedulingSettingsFrom } from "./appointments/settings.ts";
import { AuditSealer } from "./audit/sealer.ts";
import { SessionManager } from "./auth/session.ts";
import type { AppConfig } from "./config.ts";
import type { AppServices } from "./context.ts";
import { checkBlindIndexKey } from "./crypto/fingerprint.ts";
import { loadKeys } from "./crypto/load.ts";
import { PhiCrypto } from "./crypto/phi.ts";
import { type DemoSeedResult, seedDemo } from "./demo/seed.ts";
import { buildServer } from "./http.ts";
import { Metrics } from "./metrics.ts";
import { reminderQueueDepth } from "./reminders/service.ts";
import { reminderSettingsFrom } from "./reminders/settings.ts";
import { appRouter } from "./router.ts";

export interface StartOptions {
  /** Where log lines go (default stdout). */
  logDestination?: DestinationStream;
  /** Clock override (tests). */
  now?: () => Date;
  /** Use an already-open database (tests); otherwise opened from config. */
  database?: DatabaseHandle;
}

export interface RunningHaven {
  app: FastifyInstance;
  /** Base URL, e.g. http://127.0.0.1:3000 */
  url: string;
  services: AppServices;
  database: DatabaseHandle;
  keysGenerated: boolean;
  keyFile: string | undefined;
  demo: DemoSeedResult;
  /** Stop accepting requests, drain, close the database. */
  close(): Promise<void>;
}

/**
 * Boot Haven from validated config: keys, database (+ migrations unless disabled), demo data
 * (embedded default), HTTP server listening on HOST:PORT (PORT 0 = any free port).
 */
export async function startHaven(
  config: AppConfig,
  options: StartOptions = {},
): Promise<RunningHaven> {
  const log = createLogger(config.LOG_LEVEL, options.logDestination);
  const keys = await loadKeys(config);
  const database =
    options.database ??
    (await openDatabase({
      url: config.DATABASE_URL,
      directUrl: config.DATABASE_DIRECT_URL,
      pgliteDir: `${config.HAVEN_DATA_DIR}/pglite`,
    }));
  try {
    if (config.HAVEN_MIGRATE_ON_START) await database.migrate();
    const deps = {
      db: database.db,
      crypto: new PhiCrypto(keys.keyring),
      now: options.now ?? (() => new Date()),
    };
    // Refuse to serve with a blind-index key other than the one the stored indexes were built
    // with: searches and logins would silently miss (`npm run keys -- reindex`).
    await checkBlindIndexKey(database.db, deps.crypto, deps.now());
    const services: AppServices = {
      deps,
      log,
      pubsub: database,
      scheduling: schedulingSettingsFrom(config),
      privacy: privacySettingsFrom(config),
      reminders: reminderSettingsFrom(config),
      mail: createMailTransport(config, log),
      metrics: new Metrics({ queueDepth: () => reminderQueueDepth(database.db) }),
      sessions: new SessionManager(database.db, {
        ttlHours: config.HAVEN_SESSION_TTL_HOURS,
        idleTimeoutMinutes: config.HAVEN_IDLE_TIMEOUT_MINUTES,
        secureCookies: config.NODE_ENV === "production",
        now: deps.now,
      }),
    };
    const demoWanted =
      config.HAVEN_DEMO === "true" || (config.HAVEN_DEMO === "auto" && database.kind === "pglite");
    const demo = demoWanted
      ? await seedDemo(deps, { loginsFile: `${config.HAVEN_DATA_DIR}/demo-logins.txt` })
      : { seeded: false };
    const app = await buildServer({
      router: appRouter,
      services,
      database,
      allowedOrigins: config.HAVEN_ALLOWED_ORIGINS,
      metricsToken: config.HAVEN_METRICS_TOKEN,
    });
    await app.listen({ host: config.HOST, port: config.PORT });
    // Extends the audit hash chain in the background (one sealer across instances).
    const sealer = new AuditSealer(database.db, log, config.HAVEN_AUDIT_SEAL_INTERVAL_MS);
    sealer.start();
    const address = app.server.address();
    const port = typeof address === "object" && address ? address.port : config.PORT;
    const host = config.HOST.includes(":") ? `[${config.HOST}]` : config.HOST;
    return {
      app,
      url: `http://${host}:${port}`,
      services,
      database,
      keysGenerated: keys.generated,
      keyFile: keys.keyFile,
      demo,
      close: async () => {
        await app.close();
        await sealer.stop();
        await services.mail.close();
        if (!options.database) await database.close();
      },
    };
  } catch (err) {
    if (!options.database) await database.close();
    throw err;
  }
}
