import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import { TRPCError } from "@trpc/server";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AppServices, Context } from "../context.ts";
import { TooManyRequestsError } from "../kernel/errors.ts";
import type { AppRouter } from "../router.ts";
import { createCallerFactory, describeError, toTRPCError } from "../trpc.ts";
import {
  buildOpenApiDocument,
  fastifyPath,
  procedureSchemas,
  restOperationsOf,
  reviveInput,
} from "./document.ts";

export interface OpenApiPluginOptions {
  router: AppRouter;
  services: AppServices;
  /** The same context builder the tRPC adapter uses (session from Bearer or cookie). */
  createContext(req: FastifyRequest, reply: FastifyReply): Promise<Context>;
  /** The same CSRF rule as `/trpc` (`isCsrfSafe`: cookie + POST needs an allowed `Origin`). */
  isCsrfSafe(req: FastifyRequest): boolean;
}

/**
 * The reference UI's CSP: everything from this origin, nothing external (no CDN, fonts,
 * validator badge). Swagger UI styles some elements inline, hence `style-src 'unsafe-inline'`.
 */
export const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * REST error body (ADR 0010): `{ status, body: { error: { code, message, httpStatus, requestId,
 * issues, reason, retryAfterSeconds } } }` for a TRPCError; used here and for the shared rate
 * limiter's 429 on `/api/v1` (http.ts).
 */
export function restErrorBody(error: TRPCError, requestId: string) {
  const { message, data } = describeError(error, requestId);
  return { status: data.httpStatus, body: { error: { ...data, message } } };
}

/**
 * Fastify plugin: the curated REST subset under `/api/v1` (each operation calls its tRPC
 * procedure through `createCaller` with the HTTP request's context, so roles, MFA, row rules,
 * audit, throttles and error mapping are the procedure's own), `/openapi.json`, and Swagger UI at
 * `/docs` served from this origin under {@link DOCS_CSP}.
 */
export async function openApiPlugin(
  app: FastifyInstance,
  options: OpenApiPluginOptions,
): Promise<void> {
  const { router, services } = options;
  const document = buildOpenApiDocument(router);
  const createCaller = createCallerFactory(router);
  app.addHook("onSend", async (req, reply, payload) => {
    if (req.url === "/docs" || req.url.startsWith("/docs/")) {
      void reply.header("content-security-policy", DOCS_CSP);
      // The UI may be cached; the API answers stay no-store (http.ts).
      void reply.header("cache-control", "no-cache");
    }
    return payload;
  });

  for (const op of restOperationsOf(router)) {
    const { type, input } = procedureSchemas(router, op.procedure);
    if (type === "subscription") throw new Error(`${op.procedure}: subscriptions are not REST`);
    app.route({
      method: op.method === "get" ? "GET" : "POST",
      url: fastifyPath(op),
      handler: async (req, reply) => {
        if (!options.isCsrfSafe(req)) {
          // req.log already carries reqId (a second one would repeat the key in the JSON line).
          req.log.warn("cross-origin cookie request refused (REST)");
          const { status, body } = restErrorBody(
            new TRPCError({ code: "FORBIDDEN", message: "Cross-origin request refused" }),
            String(req.id),
          );
          return reply.code(status).send(body);
        }
        try {
          const ctx = await options.createContext(req, reply);
          const fromQuery = op.method === "get";
          const source = fromQuery ? req.query : req.body;
          const raw = {
            ...(typeof source === "object" && source !== null ? source : {}),
            ...(req.params as Record<string, string>),
          };
          const value = reviveInput(input, raw, fromQuery);
          const caller = createCaller(ctx, {
            onError: ({ error }) => {
              if (error.code === "INTERNAL_SERVER_ERROR")
                services.log.error(
                  { err: error.cause ?? error, path: op.procedure, reqId: ctx.requestId },
                  "procedure failed",
                );
              else
                services.log.info(
                  { code: error.code, path: op.procedure, type, reqId: ctx.requestId },
                  "procedure refused",
                );
            },
          });
          const fn = op.procedure
            .split(".")
            .reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], caller);
          const output = await (fn as (input: unknown) => Promise<unknown>)(value);
          return reply.code(200).send(output);
        } catch (err) {
          const error = toTRPCError(err);
          const { status, body } = restErrorBody(error, String(req.id));
          if (error.cause instanceof TooManyRequestsError)
            void reply.header("retry-after", String(error.cause.retryAfterSeconds));
          else if (body.error.retryAfterSeconds)
            void reply.header("retry-after", String(body.error.retryAfterSeconds));
          return reply.code(status).send(body);
        }
      },
    });
  }

  app.get("/openapi.json", async (_req, reply) => reply.send(document));

  // Swagger UI, static mode on the same document; assets come from @fastify/swagger-ui's package.
  await app.register(fastifySwagger, {
    mode: "static",
    specification: { document: document as never },
  });
  await app.register(fastifySwaggerUi, {
    routePrefix: "/docs",
    uiConfig: { validatorUrl: null } as never,
    staticCSP: false,
  });
}
