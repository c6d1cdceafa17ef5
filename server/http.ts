import fastifyCookie from "@fastify/cookie";
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
import { v7 as uuidv7 } from "uuid";
import type { DatabaseHandle } from "../db/client.ts";
import { type CookieSpec, SESSION_COOKIE } from "./auth/session.ts";
import { type AppServices, type Context, createContextInner } from "./context.ts";
import type { AppRouter } from "./router.ts";
import { assertEveryProcedureDeclaresAccess } from "./trpc.ts";

export interface ServerOptions {
  router: AppRouter;
  services: AppServices;
  database: Pick<DatabaseHandle, "ping">;
  /** Extra origins allowed to send cookie-authenticated mutations. */
  allowedOrigins: string[];
  /** Largest accepted JSON body, bytes (default 1 MiB). */
  bodyLimit?: number;
}

/** Security headers for every response (OWASP ASVS 14.4). The API serves no HTML. */
const SECURITY_HEADERS: Record<string, string> = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "cross-origin-resource-policy": "same-origin",
  "cache-control": "no-store",
};

function requestOrigin(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

/**
 * CSRF defence (ARCHITECTURE §3 known traps): a POST to /trpc that would be authenticated by the
 * session cookie (no bearer token) must carry an `Origin` equal to the server's own origin or one of
 * `allowedOrigins`. tRPC runs mutations from cross-site form posts, so this is not optional.
 */
function isCsrfSafe(req: FastifyRequest, allowed: Set<string>): boolean {
  if (req.method !== "POST") return true;
  if (req.headers.authorization?.startsWith("Bearer ")) return true;
  if (!req.cookies[SESSION_COOKIE]) return true;
  const origin = req.headers.origin;
  if (!origin) return false;
  return origin === requestOrigin(req) || allowed.has(origin);
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
  const app = Fastify({
    loggerInstance: services.log as FastifyBaseLogger,
    // Fastify's own request lines would log full URLs (GET inputs); we log our own below.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => uuidv7(),
    bodyLimit: options.bodyLimit ?? 1_048_576,
    routerOptions: { maxParamLength: 2_000 },
    trustProxy: false,
  });
  await app.register(fastifyCookie);

  app.addHook("onSend", async (_req, reply, payload) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    return payload;
  });
  // One access-log line per request: method, path WITHOUT query string (GET inputs may hold PHI),
  // status, duration in ms, request id.
  app.addHook("onResponse", async (req, reply) => {
    req.log.info(
      {
        reqId: req.id,
        method: req.method,
        path: req.url.split("?")[0],
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      "request",
    );
  });
  app.addHook("preHandler", async (req, reply) => {
    if (req.url.startsWith("/trpc") && !isCsrfSafe(req, allowed)) {
      req.log.warn({ reqId: req.id }, "cross-origin cookie mutation refused");
      await reply
        .code(403)
        .send({ error: { message: "Cross-origin request refused", code: "FORBIDDEN" } });
    }
  });

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    try {
      await options.database.ping();
      return { status: "ready" };
    } catch {
      return reply.code(503).send({ status: "unavailable" });
    }
  });

  const createContext = async ({ req, res }: CreateFastifyContextOptions): Promise<Context> => {
    const setCookie = (c: CookieSpec) => {
      void res.setCookie(c.name, c.value, c.attributes);
    };
    const bearer = services.sessions.readBearer(req.headers.authorization);
    const token = bearer ?? req.cookies[SESSION_COOKIE] ?? null;
    const validated = token ? await services.sessions.validate(token) : null;
    if (validated?.refreshed && !bearer && token) {
      // Re-set the RAW token, never the stored hash (ARCHITECTURE §3 known traps).
      setCookie(services.sessions.cookie(token));
    }
    return createContextInner(services, {
      actor: validated?.actor ?? null,
      mfaVerified: validated?.mfaVerified ?? false,
      requestId: String(req.id),
      ip: req.ip ?? null,
      userAgent: req.headers["user-agent"] ?? null,
      setCookie,
    });
  };

  await app.register(fastifyTRPCPlugin, {
    prefix: "/trpc",
    trpcOptions: {
      router: options.router,
      createContext,
      allowMethodOverride: true,
      maxBatchSize: 20,
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

  app.setNotFoundHandler((_req: FastifyRequest, reply: FastifyReply) =>
    reply.code(404).send({ error: { message: "Not found", code: "NOT_FOUND" } }),
  );
  app.setErrorHandler((err: { statusCode?: number; code?: string }, req, reply) => {
    const status =
      err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err, reqId: req.id }, "unhandled error");
    return reply.code(status).send({
      error: {
        message: status === 500 ? `Internal error. Quote request id ${req.id}.` : "Bad request",
        code: err.code ?? "ERROR",
      },
    });
  });
  return app;
}
