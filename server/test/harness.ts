import { Writable } from "node:stream";
import { createLogger } from "../../lib/logger.ts";
import { MemoryMailTransport } from "../../lib/mail.ts";
import { DEFAULT_SCHEDULING_SETTINGS } from "../appointments/settings.ts";
import { SessionManager } from "../auth/session.ts";
import { type AppServices, createContextInner } from "../context.ts";
import { PhiCrypto } from "../crypto/phi.ts";
import { buildServer, type ServerOptions } from "../http.ts";
import { enableAuditGroupCommit } from "../kernel/audit.ts";
import type { Actor } from "../kernel/roles.ts";
import { appRouter } from "../router.ts";
import { createCallerFactory } from "../trpc.ts";
import { createTestDatabase, type TestDatabase, testKeyring } from "./db.ts";
import type { Deps } from "./factory.ts";

/** Collects log lines in memory so tests can assert what was (not) logged. */
export class LogSink extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    cb();
  }
  text(): string {
    return this.lines.join("\n");
  }
}

const callerFactory = createCallerFactory(appRouter);
/** A server-side caller of the whole router. */
export type AppCaller = ReturnType<typeof callerFactory>;

export interface Harness {
  testDb: TestDatabase;
  deps: Deps;
  services: AppServices;
  logs: LogSink;
  /** Move the injected clock. */
  clock: { now: Date };
  /** Every e-mail the services sent (password reset, invitations, reminders). */
  mail: MemoryMailTransport;
  /**
   * `appRouter.createCaller` with a context for `actor` (null = anonymous). The context counts as
   * MFA-verified unless `{ mfaVerified: false }` is passed (to test the `mfa_required` refusal).
   */
  caller(actor: Actor | null, options?: { mfaVerified?: boolean }): AppCaller;
  /** Start an HTTP server on 127.0.0.1:0 (extra server options optional); returns its base URL. */
  listen(options?: Pick<ServerOptions, "requestTimeoutMs">): Promise<string>;
  close(): Promise<void>;
}

/** A fresh Postgres database, keyring, services and (optionally) an HTTP server for one test file. */
export async function createHarness(
  options: {
    logLevel?: string /** DB pool size (default 5; race tests need more). */;
    maxConnections?: number;
    /**
     * A database prepared by the caller (a throwaway cluster's, for long tests that need server
     * settings the shared cluster lacks); `close()` calls its `drop()`. Default: a fresh clone.
     */
    testDb?: TestDatabase;
  } = {},
): Promise<Harness> {
  const testDb =
    options.testDb ??
    (await createTestDatabase(
      options.maxConnections ? { maxConnections: options.maxConnections } : {},
    ));
  // As in production (server/app.ts): audit rows outside transactions go out by group commit.
  enableAuditGroupCommit(testDb.handle.db);
  const logs = new LogSink();
  const clock = { now: new Date() };
  const deps: Deps = {
    db: testDb.handle.db,
    crypto: new PhiCrypto(testKeyring()),
    now: () => new Date(clock.now),
  };
  const log = createLogger(options.logLevel ?? "info", logs);
  const mail = new MemoryMailTransport(log);
  const services: AppServices = {
    deps,
    log,
    mail,
    pubsub: testDb.handle,
    scheduling: DEFAULT_SCHEDULING_SETTINGS,
    sessions: new SessionManager(testDb.handle.db, {
      ttlHours: 12,
      idleTimeoutMinutes: 15,
      secureCookies: false,
      now: deps.now,
    }),
  };
  let app: Awaited<ReturnType<typeof buildServer>> | undefined;
  return {
    testDb,
    deps,
    services,
    logs,
    clock,
    mail,
    caller: (actor, opts) =>
      callerFactory(
        createContextInner(services, { actor, mfaVerified: opts?.mfaVerified ?? true }),
      ),
    async listen(extra = {}) {
      app = await buildServer({
        ...extra,
        router: appRouter,
        services,
        database: testDb.handle,
        allowedOrigins: [],
      });
      await app.listen({ host: "127.0.0.1", port: 0 });
      const addr = app.server.address();
      if (!addr || typeof addr === "string") throw new Error("no address");
      return `http://127.0.0.1:${addr.port}`;
    },
    async close() {
      await app?.close();
      await testDb.drop();
    },
  };
}

/**
 * Open a real session for a user and resolve it the way HTTP requests do. The session has passed
 * MFA unless `{ mfaVerified: false }` is passed.
 */
export async function actorFor(
  h: Harness,
  userId: string,
  options: { mfaVerified?: boolean } = {},
): Promise<Actor> {
  const { token } = await h.services.sessions.create(userId, {
    ip: "127.0.0.1",
    userAgent: "vitest",
    mfaVerified: options.mfaVerified ?? true,
    now: h.deps.now(),
  });
  const v = await h.services.sessions.validate(token);
  if (!v) throw new Error("session did not validate");
  return v.actor;
}
