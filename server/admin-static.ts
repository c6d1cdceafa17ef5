import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyPluginAsync } from "fastify";

/** Where `npm run build:admin` writes the clinic staff panel. */
export const ADMIN_DIST = join(dirname(fileURLToPath(import.meta.url)), "..", "admin", "dist");

/**
 * The panel's Content-Security-Policy: scripts, styles, fonts and fetches from Haven's own origin
 * only, images also as `data:` (the TOTP enrolment QR code arrives as a data URL), nothing
 * external, no inline script, no framing (OWASP ASVS 14.4.3, CSP Level 3).
 */
export const ADMIN_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** Vite's content-hashed output (`assets/index-BzX1c2aQ.js`): safe to cache for a year. */
const HASHED = /^\/admin\/assets\/[^/]+-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/;

/**
 * Serve the built panel (`admin/dist`) at `/admin/`: hashed assets `Cache-Control: public,
 * max-age=31536000, immutable`, `index.html` (also the fallback for the panel's own routes such as
 * `/admin/schedule`) `no-cache`, and {@link ADMIN_CSP} on every answer. Registers nothing when the
 * panel has not been built (`available` is false then; `npm run build` builds it).
 */
export const adminStatic: FastifyPluginAsync<{ root?: string }> = async (
  app: FastifyInstance,
  opts,
) => {
  const root = opts.root ?? ADMIN_DIST;
  if (!existsSync(join(root, "index.html"))) return;
  app.addHook("onSend", async (req, reply, payload) => {
    const path = req.url.split("?")[0] ?? "";
    if (!path.startsWith("/admin")) return payload;
    reply.header("content-security-policy", ADMIN_CSP);
    reply.header(
      "cache-control",
      HASHED.test(path) && reply.statusCode === 200
        ? "public, max-age=31536000, immutable"
        : "no-cache",
    );
    return payload;
  });
  await app.register(fastifyStatic, {
    root,
    prefix: "/admin/",
    index: ["index.html"],
    cacheControl: false,
    wildcard: false,
    decorateReply: true,
  });
  app.get("/admin", (_req, reply) => reply.redirect("/admin/", 301));
  // Client-side routes (`/admin/schedule`, `/admin/patients/…`): the SPA shell.
  app.get("/admin/*", (req, reply) => {
    const path = req.url.split("?")[0] ?? "";
    if (path.startsWith("/admin/assets/")) {
      return reply.code(404).send({ error: { message: "Not found", code: "NOT_FOUND" } });
    }
    return reply.sendFile("index.html");
  });
};

/** True when `admin/dist` holds a built panel. */
export function adminBuilt(root: string = ADMIN_DIST): boolean {
  return existsSync(join(root, "index.html"));
}
