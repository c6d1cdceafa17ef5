import type { IncomingMessage, ServerResponse } from "node:http";
import Fastify, { type FastifyInstance } from "fastify";
import helmet from "helmet";
import { afterEach, describe, expect, it } from "vitest";
import { API_CSP_DIRECTIVES } from "../http.ts";
import {
  compileSecurityHeaders,
  installSecurityHeaders,
  type SecurityHeaderOptions,
} from "../security-headers.ts";

/**
 * The security headers computed once (server/security-headers.ts) are exactly what helmet itself
 * writes on a response when run per request, as @fastify/helmet did: same names, same values, on
 * routes, on routes with their own policy, on 404s.
 */
const API_OPTIONS: SecurityHeaderOptions = {
  contentSecurityPolicy: { useDefaults: false, directives: API_CSP_DIRECTIVES },
  crossOriginResourcePolicy: { policy: "same-origin" },
  referrerPolicy: { policy: "no-referrer" },
  frameguard: { action: "deny" },
  strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
};

/** What helmet writes on a real Node response for `options` (the reference). */
async function helmetReference(options: SecurityHeaderOptions): Promise<Record<string, string>> {
  const ref = Fastify();
  ref.addHook("onRequest", (req, reply, done) => {
    helmet(options)(req.raw as IncomingMessage, reply.raw as ServerResponse, (err?: unknown) =>
      done(err as Error | undefined),
    );
  });
  ref.get("/x", async () => ({ ok: true }));
  const res = await ref.inject({ url: "/x" });
  await ref.close();
  return securityOnly(res.headers);
}

/** The response headers helmet can set (drops Fastify's own: content-type, length, date…). */
function securityOnly(headers: Record<string, unknown>): Record<string, string> {
  const own = new Set(["content-type", "content-length", "date", "connection", "keep-alive"]);
  return Object.fromEntries(
    Object.entries(headers)
      .filter(([k]) => !own.has(k))
      .map(([k, v]) => [k, String(v)]),
  );
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
});

function appWith(options: SecurityHeaderOptions): FastifyInstance {
  const app = Fastify();
  apps.push(app);
  installSecurityHeaders(app, options);
  app.get("/x", async () => ({ ok: true }));
  app.get(
    "/html",
    {
      helmet: {
        contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'self'"] } },
      },
    },
    async () => "ok",
  );
  app.get("/none", { helmet: false }, async () => "ok");
  return app;
}

describe("security headers computed once", () => {
  it("match helmet's own output, for the API options with and without HSTS", async () => {
    for (const options of [API_OPTIONS, { ...API_OPTIONS, strictTransportSecurity: false }]) {
      const expected = await helmetReference(options);
      expect(Object.keys(expected).length).toBeGreaterThanOrEqual(10);
      const res = await appWith(options).inject({ url: "/x" });
      expect(securityOnly(res.headers)).toEqual(expected);
      const compiled = compileSecurityHeaders(options);
      expect(compiled.kind).toBe("static");
    }
  });

  it("404s get them too; a route's own policy is merged over the global one; helmet: false sends none", async () => {
    const app = appWith(API_OPTIONS);
    const expected = await helmetReference(API_OPTIONS);
    const missing = await app.inject({ url: "/nope" });
    expect(missing.statusCode).toBe(404);
    expect(securityOnly(missing.headers)).toEqual(expected);

    const html = await app.inject({ url: "/html" });
    expect(securityOnly(html.headers)).toEqual(
      await helmetReference({
        ...API_OPTIONS,
        contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'self'"] } },
      }),
    );
    expect(html.headers["x-frame-options"]).toBe("DENY");

    const none = await app.inject({ url: "/none" });
    expect(none.headers["content-security-policy"]).toBeUndefined();
    expect(none.headers["x-content-type-options"]).toBeUndefined();
  });

  it("a CSP directive computed per request keeps being computed per request", async () => {
    let n = 0;
    const options: SecurityHeaderOptions = {
      contentSecurityPolicy: {
        useDefaults: false,
        directives: { defaultSrc: ["'none'"], scriptSrc: [() => `'nonce-${++n}'`] },
      },
    };
    expect(compileSecurityHeaders(options).kind).toBe("dynamic");
    const app = appWith(options);
    const a = await app.inject({ url: "/x" });
    const b = await app.inject({ url: "/x" });
    expect(a.headers["content-security-policy"]).toBe("default-src 'none';script-src 'nonce-1'");
    expect(b.headers["content-security-policy"]).toBe("default-src 'none';script-src 'nonce-2'");
  });

  it("a header set by the handler overrides the computed one", async () => {
    const app = Fastify();
    apps.push(app);
    installSecurityHeaders(app, API_OPTIONS);
    app.get("/own", async (_req, reply) =>
      reply.header("x-frame-options", "SAMEORIGIN").send("ok"),
    );
    const res = await app.inject({ url: "/own" });
    expect(res.headers["x-frame-options"]).toBe("SAMEORIGIN");
  });
});
