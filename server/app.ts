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
import { assertKeysDecryptData, databaseHoldsEncryptedData } from "./crypto/canary.ts";
import { checkBlindIndexKey } from "./crypto/fingerprint.ts";
import {
  describeServer,
  InstanceHeartbeat,
  type LiveServer,
  serversWritingUnreadable,
} from "./crypto/instances.ts";
import { loadKeys, validateEnvKeys } from "./crypto/load.ts";
import { PhiCrypto } from "./crypto/phi.ts";
import { type DemoSeedResult, seedDemo } from "./demo/seed.ts";
import { buildServer } from "./http.ts";
import { enableAuditGroupCommit } from "./kernel/audit.ts";
import { Metrics } from "./metrics.ts";
import { reminderQueueDepth } from "./reminders/service.ts";
import { reminderSettingsFrom } from "./reminders/settings.ts";
import { appRouter } from "./router.ts";
import {
  assertPortFree,
  describeDatabaseError,
  describeListenError,
  StartupError,
} from "./startup-errors.ts";

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
  /**
   * Stop accepting requests, drain (at most HAVEN_SHUTDOWN_TIMEOUT_MS, then open sockets are
   * closed), stop the sealer and mail transport, close the database.
   */
  close(): Promise<void>;
}

/**
 * Boot Haven from validated config: env key format, port, database (embedded: its data-directory
 * lock), reachability, keys (never a fresh key file for a database holding ciphertext), migrations unless
 * disabled, the per-key canary and blind-index checks, the key heartbeat, demo data (embedded
 * default), then the HTTP server on HOST:PORT (PORT 0 = any free port).
 * @throws StartupError / DataDirLockedError / KeyError with a one-line cause, before any migration
 *   or seed for everything but the key checks that need the migrated schema
 */
export async function startHaven(
  config: AppConfig,
  options: StartOptions = {},
): Promise<RunningHaven> {
  const log = createLogger(config.LOG_LEVEL, options.logDestination);
  // Order matters: every check that can fail with a one-line cause runs before any
  // migration or seed changes the database; the cheap ones before the database is even opened.
  validateEnvKeys(config);
  await assertPortFree(config.HOST, config.PORT);
  const database =
    options.database ??
    (await openDatabase({
      url: config.DATABASE_URL,
      directUrl: config.DATABASE_DIRECT_URL,
      pgliteDir: `${config.HAVEN_DATA_DIR}/pglite`,
      pgliteSharedBuffersMb: config.HAVEN_PGLITE_SHARED_BUFFERS_MB,
    }));
  let heartbeat: InstanceHeartbeat | undefined;
  try {
    try {
      await database.ping();
    } catch (err) {
      const line = config.DATABASE_URL && describeDatabaseError(err, config.DATABASE_URL);
      if (line) throw new StartupError(line);
      throw err;
    }
    const keys = await loadKeys(config, {
      databaseHoldsEncryptedData: () => databaseHoldsEncryptedData(database.db),
    });
    // Read-only emergency mode changes nothing at startup either: no migrations, no demo seed.
    if (config.HAVEN_MIGRATE_ON_START && !config.HAVEN_READ_ONLY) await database.migrate();
    if (config.HAVEN_READ_ONLY) {
      log.warn(
        "read-only emergency mode: changes are refused (HAVEN_READ_ONLY), no migrations run",
      );
    }
    // Reads and denials of concurrent requests share one audit INSERT (each still waits for its
    // own row to commit; bench/results/optimisations.md §4).
    enableAuditGroupCommit(database.db);
    const deps = {
      db: database.db,
      crypto: new PhiCrypto(keys.keyring),
      now: options.now ?? (() => new Date()),
    };
    // Refuse to serve when the keys cannot read what is stored (a per-key canary), and with a
    // blind-index key other than the one the stored indexes were built with: searches and logins
    // would silently miss (`npm run keys -- reindex`).
    await assertKeysDecryptData(database.db, keys.keyring);
    await checkBlindIndexKey(database.db, deps.crypto, deps.now());
    // Advertise the keys this server holds; readiness fails while another live server encrypts
    // under a key this one lacks (its PHI reads of those rows would fail).
    let unreadable: LiveServer[] = [];
    heartbeat = new InstanceHeartbeat(database.db, keys.keyring, {
      intervalMs: config.HAVEN_INSTANCE_HEARTBEAT_MS,
      onBeat: (servers) => {
        const now = serversWritingUnreadable(servers, keys.keyring, heartbeat?.id ?? "");
        if (now.length > 0 && unreadable.length === 0) {
          log.warn(
            { servers: now.map(describeServer) },
            "not ready: live servers encrypt under PHI keys this server does not hold",
          );
        }
        unreadable = now;
      },
      onError: (err) =>
        log.warn({ err: err instanceof Error ? err.name : "error" }, "instance heartbeat failed"),
    });
    try {
      await heartbeat.register();
    } catch (err) {
      if (
        (err as { code?: unknown }).code === "42P01" ||
        (err as { cause?: { code?: unknown } }).cause?.code === "42P01"
      ) {
        throw new StartupError(
          "The database schema is behind this version of Haven (table server_instances is missing): " +
            "run `npm run db:migrate`, or start with HAVEN_MIGRATE_ON_START=true.",
        );
      }
      throw err;
    }
    const services: AppServices = {
      deps,
      log,
      pubsub: database,
      scheduling: schedulingSettingsFrom(config),
      privacy: privacySettingsFrom(config),
      reminders: reminderSettingsFrom(config),
      mail: createMailTransport(config, log),
      metrics: new Metrics({ queueDepth: () => reminderQueueDepth(database.db) }),
      readOnly: config.HAVEN_READ_ONLY,
      sessions: new SessionManager(database.db, {
        ttlHours: config.HAVEN_SESSION_TTL_HOURS,
        idleTimeoutMinutes: config.HAVEN_IDLE_TIMEOUT_MINUTES,
        secureCookies: config.NODE_ENV === "production",
        now: deps.now,
      }),
    };
    const demoWanted =
      !config.HAVEN_READ_ONLY &&
      (config.HAVEN_DEMO === "true" ||
        (config.HAVEN_DEMO === "auto" && database.kind === "pglite"));
    const demo = demoWanted
      ? await seedDemo(deps, { loginsFile: `${config.HAVEN_DATA_DIR}/demo-logins.txt` })
      : { seeded: false };
    const app = await buildServer({
      router: appRouter,
      services,
      database: {
        ping: async () => {
          await database.ping();
          if (unreadable.length > 0) throw new Error("PHI keys missing for live servers' data");
        },
      },
      allowedOrigins: config.HAVEN_ALLOWED_ORIGINS,
      metricsToken: config.HAVEN_METRICS_TOKEN,
      hsts: config.NODE_ENV === "production",
      trustProxy: config.HAVEN_TRUST_PROXY,
      rateLimit: {
        db: database.db,
        perIp: config.HAVEN_RATE_LIMIT_IP,
        perSession: config.HAVEN_RATE_LIMIT_SESSION,
        perApiKey: config.HAVEN_RATE_LIMIT_API_KEY,
        windowSeconds: config.HAVEN_RATE_LIMIT_WINDOW_SECONDS,
      },
    });
    try {
      await app.listen({ host: config.HOST, port: config.PORT });
    } catch (err) {
      await app.close();
      const line = describeListenError(err, config.HOST, config.PORT);
      throw line ? new StartupError(line) : err;
    }
    // Extends the audit hash chain in the background (one sealer across instances).
    const sealer = new AuditSealer(database.db, log, config.HAVEN_AUDIT_SEAL_INTERVAL_MS);
    sealer.start();
    const address = app.server.address();
    const port = typeof address === "object" && address ? address.port : config.PORT;
    const host = config.HOST.includes(":") ? `[${config.HOST}]` : config.HOST;
    const url = `http://${host}:${port}`;
    await heartbeat.setUrl(url);
    heartbeat.start();
    const beating = heartbeat;
    return {
      app,
      url,
      services,
      database,
      keysGenerated: keys.generated,
      keyFile: keys.keyFile,
      demo,
      close: async () => {
        // Drain: stop accepting, end SSE streams and idle keep-alive sockets (http.ts), let
        // in-flight requests finish; whatever is still open after the bound is cut off.
        let timer: NodeJS.Timeout | undefined;
        const cutOff = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            // Safety net only: a request still running after the bound (a stuck handler).
            log.warn(
              { timeoutMs: config.HAVEN_SHUTDOWN_TIMEOUT_MS },
              "drain cut off: closing the connections still open",
            );
            app.server.closeAllConnections();
            resolve();
          }, config.HAVEN_SHUTDOWN_TIMEOUT_MS);
          timer.unref();
        });
        await Promise.race([app.close(), cutOff]);
        clearTimeout(timer);
        await beating.stop();
        await sealer.stop();
        await services.mail.close();
        if (!options.database) await database.close();
      },
    };
  } catch (err) {
    await heartbeat?.stop();
    if (!options.database) await database.close();
    throw err;
  }
}
