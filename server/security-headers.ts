import type { FastifyInstance, FastifyReply, RawServerBase, RawServerDefault } from "fastify";
import helmet, { type HelmetOptions } from "helmet";

/** helmet's options (https://helmetjs.github.io): which security headers, with which values. */
export type SecurityHeaderOptions = NonNullable<HelmetOptions>;

/**
 * What one route sends: `static` headers computed once from helmet's output (name lower-case,
 * value), or helmet's middleware built once and run per request when a CSP directive is a
 * function (its value depends on the request), or `skip` for a route that opted out (`helmet: false`).
 */
type CompiledHeaders =
  | { kind: "static"; names: readonly string[]; values: readonly string[] }
  | { kind: "dynamic"; middleware: ReturnType<typeof helmet> }
  | { kind: "skip" };

declare module "fastify" {
  // Same route option as @fastify/helmet, so routes keep declaring their own policy the same way.
  interface RouteShorthandOptions<
    // Fastify's own type parameter, repeated so the declarations merge.
    RawServer extends RawServerBase = RawServerDefault,
  > {
    /** This route's security headers: merged over the global options, or `false` for none. */
    helmet?: SecurityHeaderOptions | false;
  }
  interface FastifyContextConfig {
    /** Filled in at route registration by {@link installSecurityHeaders}; not for routes to set. */
    securityHeaders?: CompiledHeaders;
  }
}

function hasDynamicDirective(options: SecurityHeaderOptions): boolean {
  const csp = options.contentSecurityPolicy;
  if (!csp || typeof csp !== "object" || !csp.directives) return false;
  for (const value of Object.values(csp.directives)) {
    if (typeof value === "function") return true;
    if (Array.isArray(value) && value.some((v) => typeof v === "function")) return true;
  }
  return false;
}

/**
 * Compile helmet `options` into the headers every response of a route gets. helmet's middleware
 * is run ONCE against a recorder: it only calls `setHeader` (and `removeHeader("X-Powered-By")`,
 * a header Fastify never sets) with values fixed by the options, so the recorded list is exactly
 * what it would write on each request. A CSP with function directives keeps the (prebuilt)
 * middleware and runs it per request instead.
 * @throws Error from helmet for invalid options (e.g. a malformed CSP directive), at startup
 */
export function compileSecurityHeaders(options: SecurityHeaderOptions): CompiledHeaders {
  const middleware = helmet(options);
  if (hasDynamicDirective(options)) return { kind: "dynamic", middleware };
  const names: string[] = [];
  const values: string[] = [];
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      names.push(name.toLowerCase());
      values.push(Array.isArray(value) ? value.join(", ") : String(value));
    },
    removeHeader() {},
  };
  middleware({} as never, recorder as never, (err?: unknown) => {
    if (err) throw err;
  });
  return { kind: "static", names, values };
}

function apply(headers: CompiledHeaders, reply: FastifyReply): void {
  if (headers.kind === "static") {
    const { names, values } = headers;
    for (let i = 0; i < names.length; i++) reply.header(names[i] as string, values[i]);
  } else if (headers.kind === "dynamic") {
    headers.middleware(reply.request.raw, reply.raw, (err?: unknown) => {
      if (err) throw err;
    });
  }
}

/**
 * Security headers (OWASP ASVS 14.4) from helmet on EVERY response of `app`, 404s and errors
 * included, like @fastify/helmet but without its per-request cost: @fastify/helmet 13 builds a new
 * helmet middleware (parsing the CSP directives) on each request, in an async hook (up to ~60 µs
 * CPU per request measured in-process: bench/results/optimisations.md §11.1, §11.3). Here the headers are computed once for the global
 * options and once per route that passes its own `helmet` route option (merged over the global
 * ones; `helmet: false` sends none), and set by one synchronous `onRequest` hook. Headers a
 * handler or a later hook sets still override them (e.g. the API docs' CSP).
 * Call before registering routes: routes registered earlier get the global headers only.
 * @throws Error from helmet for invalid options, at startup
 */
export function installSecurityHeaders(app: FastifyInstance, options: SecurityHeaderOptions): void {
  const global = compileSecurityHeaders(options);
  app.addHook("onRoute", (route) => {
    const own = route.helmet;
    if (own === undefined) return;
    route.config = {
      ...route.config,
      securityHeaders:
        own === false
          ? { kind: "skip" }
          : compileSecurityHeaders({ ...options, ...own } as SecurityHeaderOptions),
    };
  });
  app.addHook("onRequest", (req, reply, done) => {
    apply(req.routeOptions.config.securityHeaders ?? global, reply);
    done();
  });
}
