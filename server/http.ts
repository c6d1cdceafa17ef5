import fastifyCookie from "@fastify/cookie";
import fastifyCors from "@fastify/cors";
import fastifyRateLimit from "@fastify/rate-limit";
import { TRPCError } from "@trpc/server";
import {
  type CreateFastifyContextOptions,
  type FastifyTRPCPluginOptions,
  fastifyTRPCPlugin,
} from "@trpc/server/adapters/fastify";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from "fastify";
import type { Database, DatabaseHandle } from "../db/client.ts";
import { uuidv7 } from "../lib/uuid.ts";
import { adminStatic } from "./admin-static.ts";
import { authenticate } from "./auth/credentials.ts";
import { type CookieSpec, SESSION_COOKIE } from "./auth/session.ts";
import { type AppServices, type Context, createContextInner } from "./context.ts";
import { ReadOnlyModeError, TooManyRequestsError } from "./kernel/errors.ts";
import { sha256Hex } from "./kernel/hash.ts";
import { UNAVAILABLE_RETRY_AFTER_SECONDS } from "./kernel/unavailable.ts";
import { REST_PREFIX } from "./openapi/operations.ts";
import { openApiPlugin, restErrorBody } from "./openapi/plugin.ts";
import { postgresRateLimitStore } from "./rate-limit-store.ts";
import type { AppRouter } from "./router.ts";
import { installSecurityHeaders } from "./security-headers.ts";
import { assertEveryProcedureDeclaresAccess, toTRPCError, trpcErrorBody } from "./trpc.ts";

export interface ServerOptions {
  router: AppRouter;
  services: AppServices;
  database: Pick<DatabaseHandle, "ping">;
  /** Extra origins allowed to send cookie-authenticated mutations. */
  allowedOrigins: string[];
  /** Largest accepted JSON body, bytes (default 1 MiB). */
  bodyLimit?: number;
  /**
   * Bearer token required for GET /metrics. Unset: /metrics answers loopback clients only
   * (a Prometheus scraper on the same host or through a sidecar).
   */
  metricsToken?: string | undefined;
  /**
   * Longest time a client may take to send a whole request (headers and body), ms (default 30 000).
   * Like a reverse proxy's client body timeout: a body trickled one byte every few seconds is cut
   * off with 408. Streaming responses (SSE) are not affected: the clock stops once the request is in.
   */
  requestTimeoutMs?: number;
  /** General API rate limiting; omitted = off (unit tests of other layers). */
  rateLimit?: RateLimitSettings | undefined;
  /** Send `Strict-Transport-Security` (NODE_ENV=production; behind TLS). */
  hsts?: boolean;
  /**
   * Proxies (IP addresses / CIDR ranges) whose `X-Forwarded-For`, `-Proto` and `-Host` are
   * believed (HAVEN_TRUST_PROXY). Empty or omitted: none; the client IP is the TCP peer.
   */
  trustProxy?: readonly string[];
}

/** Methods Haven answers; anything else (TRACE, CONNECT, PUT…) gets 405 with `Allow`. */
/** While draining, how often sockets that have become idle are ended (ms). */
const DRAIN_SWEEP_MS = 50;

const ALLOWED_METHODS = ["GET", "HEAD", "POST", "OPTIONS"] as const;

/** Limits of the general API rate limiter (requests per window per bucket; 0 = limiter off). */
export interface RateLimitSettings {
  /** The database that holds the shared counters (`rate_limit_buckets`). */
  db: Database;
  /** Anonymous callers, per client IP. */
  perIp: number;
  /** Signed-in users, per session (cookie or bearer session token). */
  perSession: number;
  /** Service accounts, per API key (`hk_…`). */
  perApiKey: number;
  /** Window length, seconds. */
  windowSeconds: number;
}

/**
 * Content-Security-Policy of the API (JSON only, never HTML): nothing may load, nothing may frame
 * it. Routes that serve HTML (an admin panel, API docs) pass their own `helmet` route option,
 * e.g. `app.get("/docs", { helmet: { contentSecurityPolicy: { directives: {...} } } }, handler)`.
 */
export const API_CSP_DIRECTIVES = {
  defaultSrc: ["'none'"],
  frameAncestors: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'none'"],
};

/** Headers browsers may send cross-origin to the API (tRPC over fetch and SSE). */
const CORS_ALLOWED_HEADERS = [
  "content-type",
  "authorization",
  "trpc-accept",
  "x-trpc-source",
  "last-event-id",
];

/**
 * Whether a route or request URL is API traffic under the shared rate limit: `/trpc/*` and the
 * REST subset under `/api/v1/*` (which calls the same procedures, so the same budget must hold
 * there: OWASP API4:2023 unrestricted resource consumption). Probes, metrics, docs and the panel
 * are not.
 */
export function isRateLimitedPath(url: string): boolean {
  return url.startsWith("/trpc") || url === REST_PREFIX || url.startsWith(`${REST_PREFIX}/`);
}

/**
 * Rate-limit bucket of a request: `key:` + SHA-256 of a service API key, `sess:` + SHA-256 of a
 * session token (bearer or cookie), otherwise `ip:` + the client address. Secrets are never stored.
 */
export function rateLimitBucket(req: FastifyRequest): string {
  const auth = req.headers.authorization;
  const bearer = auth?.startsWith("Bearer ") ? auth.slice(7).trim() : undefined;
  if (bearer) return `${bearer.startsWith("hk_") ? "key" : "sess"}:${sha256Hex(bearer)}`;
  const cookie = req.cookies[SESSION_COOKIE];
  if (cookie) return `sess:${sha256Hex(cookie)}`;
  return `ip:${req.ip}`;
}

function isLoopback(address: string | undefined): boolean {
  return address === "127.0.0.1" || address === "::1" || address === "::ffff:127.0.0.1";
}

function requestOrigin(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

/**
 * CSRF defence (ARCHITECTURE §3 known traps; OWASP ASVS 4.2.2, 3.5.3). tRPC runs mutations from
 * cross-site `multipart/form-data` and `text/plain` form posts, so this is not optional:
 * - a request with an `Authorization` header is exempt: it is authenticated by that header only
 *   (never by the cookie), and browsers send no such header cross-site without a CORS grant;
 * - any other POST that carries an `Origin` must come from the server's own origin or one of
 *   `allowedOrigins` (this also stops login CSRF, which sets a cookie);
 * - a POST without `Origin` (non-browser clients) must not carry the session cookie;
 * - a cookie-carrying GET (queries only: tRPC refuses mutations over GET) that the browser marks
 *   `Sec-Fetch-Site: cross-site` is refused too, so a cross-site link cannot make a victim's
 *   browser read (and audit a read of) a record.
 */
export function isCsrfSafe(req: FastifyRequest, allowed: Set<string>): boolean {
  if (req.headers.authorization !== undefined) return true;
  const origin = req.headers.origin;
  const originOk = origin !== undefined && (origin === requestOrigin(req) || allowed.has(origin));
  const hasCookie = Boolean(req.cookies[SESSION_COOKIE]);
  if (req.method === "POST") {
    if (origin !== undefined) return originOk;
    return !hasCookie;
  }
  if (hasCookie && req.headers["sec-fetch-site"] === "cross-site") return originOk;
  return true;
}

/**
 * The request context for an HTTP call (tRPC and the REST adapter alike): the session from the
 * `Authorization: Bearer` header or the session cookie, its MFA state, request id, IP and
 * user agent; refreshes the sliding session cookie. A database outage while resolving the session
 * is a 503 (`toTRPCError`), never a 500.
 * @throws TRPCError SERVICE_UNAVAILABLE when the session store is down
 */
export async function createRequestContext(
  services: AppServices,
  req: FastifyRequest,
  res: FastifyReply,
): Promise<Context> {
  const setCookie = (c: CookieSpec) => {
    void res.setCookie(c.name, c.value, c.attributes);
  };
  const cookieToken = req.cookies[SESSION_COOKIE];
  // A database outage while resolving the session is a 503, not a 500 (toTRPCError).
  const auth = await authenticate(services, {
    authorization: req.headers.authorization,
    cookie: cookieToken,
  }).catch((err: unknown) => {
    throw toTRPCError(err);
  });
  if (auth?.refreshCookie && cookieToken) {
    // Re-set the RAW token, never the stored hash (ARCHITECTURE §3 known traps).
    setCookie(services.sessions.cookie(cookieToken));
  }
  return createContextInner(services, {
    actor: auth?.actor ?? null,
    mfaVerified: auth?.mfaVerified ?? false,
    mfaEnrolled: auth?.mfaEnrolled ?? false,
    requestId: String(req.id),
    ip: req.ip ?? null,
    userAgent: req.headers["user-agent"] ?? null,
    setCookie,
  });
}

/**
 * Build the Fastify app: tRPC at `/trpc` (superjson, batching), `/healthz`, `/readyz`.
 * Startup fails if any procedure lacks `meta({ roles })`.
 * @throws Error listing procedures without an access rule
 */
export async function buildServer(options: ServerOptions): Promise<FastifyInstance> {
  assertEveryProcedureDeclaresAccess(options.router);
  const { services } = options;
  const allowed = new Set(options.allowedOrigins);
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  const app = Fastify({
    loggerInstance: services.log as FastifyBaseLogger,
    // Fastify's own request lines would log full URLs (GET inputs); we log our own below.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => uuidv7(),
    bodyLimit: options.bodyLimit ?? 1_048_576,
    routerOptions: { maxParamLength: 2_000 },
    // Forwarded headers only from the configured proxies (never from anyone: a forged
    // X-Forwarded-For would pick the IP that throttles count and the audit trail records).
    // `req.ip` is then the right-most address not in the list (proxy-addr).
    trustProxy:
      options.trustProxy && options.trustProxy.length > 0 ? [...options.trustProxy] : false,
    // Slow-body defence (issue 13): Node ends a request not fully received within requestTimeout
    // (408), checked every second; headers get the same bound.
    requestTimeout: requestTimeoutMs,
    http: {
      headersTimeout: requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1_000, requestTimeoutMs),
    },
    // On close, end idle keep-alive sockets at once (in-flight ones close after their response).
    forceCloseConnections: "idle",
  });
  await app.register(fastifyCookie);
  // Security headers (OWASP ASVS 14.4) from helmet; strict CSP for the JSON API, per-route
  // overrides through the `helmet` route option. HSTS only where TLS is guaranteed (production).
  // Computed once (per route with its own policy), not per request: security-headers.ts.
  installSecurityHeaders(app, {
    contentSecurityPolicy: { useDefaults: false, directives: API_CSP_DIRECTIVES },
    crossOriginResourcePolicy: { policy: "same-origin" },
    referrerPolicy: { policy: "no-referrer" },
    frameguard: { action: "deny" },
    strictTransportSecurity: options.hsts ? { maxAge: 31_536_000, includeSubDomains: true } : false,
  });
  // Cross-origin frontends named in HAVEN_ALLOWED_ORIGINS (and only those) may call the API with
  // credentials; preflights are answered here, before the body parser (no more 415).
  await app.register(fastifyCors, {
    origin: [...allowed],
    credentials: true,
    methods: ["GET", "POST"],
    allowedHeaders: CORS_ALLOWED_HEADERS,
    maxAge: 600,
  });
  const limits = options.rateLimit;
  if (limits && (limits.perIp > 0 || limits.perSession > 0 || limits.perApiKey > 0)) {
    const maxFor = (key: string) => {
      const n = key.startsWith("key:")
        ? limits.perApiKey
        : key.startsWith("sess:")
          ? limits.perSession
          : limits.perIp;
      return n > 0 ? n : Number.MAX_SAFE_INTEGER;
    };
    // Probes, the scraper, the docs and the panel are not API traffic: their routes get no limiter
    // hook at all (it would hash the session token and run several awaits per request only for
    // `allowList` below to wave them through). This onRoute hook runs before the plugin's own.
    app.addHook("onRoute", (route) => {
      if (!isRateLimitedPath(route.url)) route.config = { ...route.config, rateLimit: false };
    });
    await app.register(fastifyRateLimit, {
      global: true,
      store: postgresRateLimitStore(limits.db),
      // A failing counter store (database down) must not fail the request: it proceeds, and the
      // procedure itself answers 503 + Retry-After.
      skipOnError: true,
      timeWindow: limits.windowSeconds * 1000,
      keyGenerator: rateLimitBucket,
      max: (_req, key) => maxFor(key),
      // Backstop for any request outside the API that still reaches the hook (same rule as above).
      allowList: (req) => !isRateLimitedPath(req.url),
      errorResponseBuilder: (_req, ctx) =>
        Object.assign(new Error(`Too many requests; retry after ${Math.ceil(ctx.ttl / 1000)} s`), {
          statusCode: 429,
          code: "TOO_MANY_REQUESTS",
          retryAfterSeconds: Math.max(1, Math.ceil(ctx.ttl / 1000)),
        }),
    });
  }
  // Set before any route is registered: a route keeps the error handler current at its
  // registration (so 429s from the limiter and 413s from the body parser get this shape too).
  app.setErrorHandler(
    (
      err: { statusCode?: number; code?: string; message?: string; retryAfterSeconds?: number },
      req,
      reply,
    ) => {
      const status =
        err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      if (status === 500) req.log.error({ err }, "unhandled error");
      // The limiter answers before tRPC runs: give tRPC clients tRPC's own error envelope, so the
      // SDK reports TOO_MANY_REQUESTS with retryAfterSeconds (the REST API keeps its shape below).
      if (status === 429 && req.url.startsWith("/trpc/")) {
        const retryAfter = err.retryAfterSeconds ?? 1;
        const error = new TRPCError({
          code: "TOO_MANY_REQUESTS",
          message: err.message ?? "Too many requests",
          cause: new TooManyRequestsError(err.message ?? "Too many requests", retryAfter),
        });
        return reply.code(429).send(trpcErrorBody(req.url, error, String(req.id)));
      }
      // The REST API's own error shape (ADR 0010), as its procedures' refusals have it.
      if (status === 429 && req.url.startsWith(`${REST_PREFIX}/`)) {
        const retryAfter = err.retryAfterSeconds ?? 1;
        const error = new TRPCError({
          code: "TOO_MANY_REQUESTS",
          message: err.message ?? "Too many requests",
          cause: new TooManyRequestsError(err.message ?? "Too many requests", retryAfter),
        });
        return reply.code(429).send(restErrorBody(error, String(req.id)).body);
      }
      return reply.code(status).send({
        error: {
          message:
            status === 500
              ? `Internal error. Quote request id ${req.id}.`
              : status === 429
                ? (err.message ?? "Too many requests")
                : "Bad request",
          code: err.code ?? "ERROR",
        },
      });
    },
  );
  // The hooks below run on every request, so they are synchronous (no promise per hook and
  // request; bench/results/optimisations.md §11.2). A hook that answers does not call `done`.
  let draining = false;
  app.addHook("onSend", (_req, reply, payload, done) => {
    reply.header("cache-control", "no-store");
    // tRPC answers with a web Response whose own headers win over the reply's; its SSE stream says
    // `Cache-Control: no-cache`, but the stream carries names and visit reasons: no-store (issue 13).
    if (payload instanceof Response) payload.headers.set("cache-control", "no-store");
    // While draining (below) every response closes its connection.
    if (draining) reply.header("connection", "close");
    done(null, payload);
  });
  // One access-log line per request: method, path WITHOUT query string (GET inputs may hold PHI),
  // status, duration in ms, request id. Nothing is built when the level is above info.
  app.addHook("onResponse", (req, reply, done) => {
    // req.log is a pino child of services.log (loggerInstance above).
    if ((req.log as AppServices["log"]).isLevelEnabled("info")) {
      const q = req.url.indexOf("?");
      req.log.info(
        {
          method: req.method,
          path: q === -1 ? req.url : req.url.slice(0, q),
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime),
        },
        "request",
      );
    }
    done();
  });
  app.addHook("preHandler", (req, reply, done) => {
    if (req.url.startsWith("/trpc") && !isCsrfSafe(req, allowed)) {
      req.log.warn("cross-origin cookie mutation refused");
      void reply
        .code(403)
        .send({ error: { message: "Cross-origin request refused", code: "FORBIDDEN" } });
      return;
    }
    done();
  });

  // Drain (SIGTERM, app.close()): Node's server.close() ends the keep-alive sockets that are idle
  // at that moment, but a request in flight then leaves its socket open for keepAliveTimeout
  // (72 s) after its response. So while draining every response says `Connection: close` (Node
  // ends the socket once it is written), idle sockets are swept every DRAIN_SWEEP_MS until the
  // server has closed, and live SSE streams (appointments.onChange), which never finish on their
  // own, are ended; clients reconnect elsewhere with lastEventId. In-flight requests still run to
  // completion. HAVEN_SHUTDOWN_TIMEOUT_MS (app.ts) stays only as the safety net.
  const streams = new Set<FastifyReply["raw"]>();
  let sweep: NodeJS.Timeout | undefined;
  const allowHeader = ALLOWED_METHODS.join(", ");
  app.addHook("onRequest", (req, reply, done) => {
    if (!(ALLOWED_METHODS as readonly string[]).includes(req.method)) {
      void reply
        .code(405)
        .header("allow", allowHeader)
        .send({ error: { message: "Method not allowed", code: "METHOD_NOT_SUPPORTED" } });
      return;
    }
    if (req.headers.accept?.includes("text/event-stream")) {
      streams.add(reply.raw);
      reply.raw.once("close", () => streams.delete(reply.raw));
    }
    done();
  });
  app.addHook("preClose", async () => {
    draining = true;
    for (const s of streams) s.destroy();
    sweep = setInterval(() => app.server.closeIdleConnections(), DRAIN_SWEEP_MS);
    sweep.unref();
  });
  app.addHook("onClose", async () => {
    clearInterval(sweep);
  });

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/metrics", async (req, reply) => {
    const metrics = services.metrics;
    if (!metrics)
      return reply.code(404).send({ error: { message: "Not found", code: "NOT_FOUND" } });
    const allowed = options.metricsToken
      ? req.headers.authorization === `Bearer ${options.metricsToken}`
      : isLoopback(req.socket.remoteAddress);
    if (!allowed)
      return reply.code(403).send({ error: { message: "Forbidden", code: "FORBIDDEN" } });
    const { contentType, body } = await metrics.render();
    return reply.header("content-type", contentType).send(body);
  });
  // `mode` says whether writes are accepted: a read-only instance is still ready (it serves reads),
  // so a load balancer keeps routing to it; monitoring alerts on `mode: "read-only"` (ADR 0013).
  const mode = services.readOnly ? "read-only" : "read-write";
  app.get("/readyz", async (_req, reply) => {
    try {
      await options.database.ping();
      return { status: "ready", mode };
    } catch {
      return reply
        .code(503)
        .header("retry-after", String(UNAVAILABLE_RETRY_AFTER_SECONDS))
        .send({ status: "unavailable", mode });
    }
  });

  const createContext = ({ req, res }: CreateFastifyContextOptions) =>
    createRequestContext(services, req, res);

  await app.register(fastifyTRPCPlugin, {
    prefix: "/trpc",
    trpcOptions: {
      router: options.router,
      createContext,
      allowMethodOverride: true,
      maxBatchSize: 20,
      // 429 and 503 answers carry `Retry-After` (seconds), as well as `data.retryAfterSeconds`.
      responseMeta({ errors }) {
        let retry = 0;
        for (const e of errors) {
          if (e.cause instanceof TooManyRequestsError || e.cause instanceof ReadOnlyModeError)
            retry = Math.max(retry, e.cause.retryAfterSeconds);
          else if (e.code === "SERVICE_UNAVAILABLE")
            retry = Math.max(retry, UNAVAILABLE_RETRY_AFTER_SECONDS);
        }
        return retry > 0 ? { headers: { "retry-after": String(retry) } } : {};
      },
      onError({ error, path, ctx, type }) {
        if (error.code === "INTERNAL_SERVER_ERROR") {
          services.log.error(
            { err: error.cause ?? error, path, type, reqId: ctx?.requestId },
            "procedure failed",
          );
        } else {
          services.log.info(
            { code: error.code, path, type, reqId: ctx?.requestId },
            "procedure refused",
          );
        }
      },
    },
  } satisfies FastifyTRPCPluginOptions<AppRouter>);

  // The clinic staff panel (admin/dist) at /admin/, with its own CSP and caching.
  await app.register(adminStatic);

  // REST subset + /openapi.json + /docs (ADR 0010): same context, CSRF rule and procedures.
  await app.register(openApiPlugin, {
    router: options.router,
    services,
    createContext: (req, reply) => createRequestContext(services, req, reply),
    isCsrfSafe: (req) => isCsrfSafe(req, allowed),
  });

  app.setNotFoundHandler((_req: FastifyRequest, reply: FastifyReply) =>
    reply.code(404).send({ error: { message: "Not found", code: "NOT_FOUND" } }),
  );
  return app;
}
