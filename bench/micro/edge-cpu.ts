/**
 * CPU per `GET /healthz` through Haven's real `buildServer` (every edge hook and plugin: cookies,
 * security headers, CORS, the rate limiter's registration, 405/CSRF/drain/access-log hooks), driven
 * by `app.inject` so no socket or HTTP parsing is counted, against a bare Fastify app with the same
 * route. Process CPU (user + system) per request, µs, after a warm-up; not wall time, so it is far
 * less sensitive to a shared machine than req/s, but still report the load average with it.
 * A/B: run it from `git archive`s of two commits (bench/results/optimisations.md §11.3).
 * Usage: `node --import tsx bench/micro/edge-cpu.ts [requests=20000]` (LOG_LEVEL, default warn).
 */
import { Writable } from "node:stream";
import Fastify from "fastify";
import { createLogger } from "../../lib/logger.ts";
import type { AppServices } from "../../server/context.ts";
import { buildServer } from "../../server/http.ts";
import { appRouter } from "../../server/router.ts";

const n = Number(process.argv[2] ?? 20_000);
const level = process.env.LOG_LEVEL ?? "warn";
const sink = new Writable({
  write(_chunk, _enc, done) {
    done();
  },
});

/** CPU µs per inject of `GET /healthz` with a session cookie, after 3,000 warm-up requests. */
async function cpuPerRequest(app: ReturnType<typeof Fastify>): Promise<number> {
  await app.ready();
  const run = async (k: number) => {
    for (let i = 0; i < k; i++) {
      const res = await app.inject({ url: "/healthz", headers: { cookie: "haven_session=x" } });
      if (res.statusCode !== 200) throw new Error(`/healthz answered ${res.statusCode}`);
    }
  };
  await run(3_000);
  const start = process.cpuUsage();
  await run(n);
  const d = process.cpuUsage(start);
  await app.close();
  return (d.user + d.system) / n;
}

const bare = Fastify();
bare.get("/healthz", async () => ({ status: "ok" }));
const bareUs = await cpuPerRequest(bare);

// /healthz touches only the logger among the services; the limiter is registered as in
// production (its store is never reached: /healthz is not API traffic).
const haven = await buildServer({
  router: appRouter,
  services: { log: createLogger(level, sink) } as unknown as AppServices,
  database: { ping: async () => {} },
  allowedOrigins: [],
  rateLimit: {
    db: {} as never,
    perIp: 1_000_000,
    perSession: 1_000_000,
    perApiKey: 1_000_000,
    windowSeconds: 60,
  },
});
const havenUs = await cpuPerRequest(haven as unknown as ReturnType<typeof Fastify>);
const { loadavg } = await import("node:os");
console.log(
  `/healthz via inject, LOG_LEVEL=${level}, n=${n}: Haven ${havenUs.toFixed(1)} µs CPU/request, ` +
    `bare Fastify ${bareUs.toFixed(1)} µs, Haven's edge ${(havenUs - bareUs).toFixed(1)} µs ` +
    `(load1 ${loadavg()[0]?.toFixed(2)})`,
);
