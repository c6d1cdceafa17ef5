import { type ChildProcess, spawn } from "node:child_process";
import { openSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { type Clinic, makeClinic, setHours } from "../appointments/fixtures.ts";
import { loginWithMfa, makeUser, type TestUser } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { portInUse, spawnAsClusterUser } from "./cluster.ts";

/**
 * Issue 15 §3, scale-out on real components (long mode): two Haven processes behind HAProxy
 * (round-robin, health check GET /readyz) with PgBouncer (transaction pooling) between them and
 * the shared PostgreSQL; DATABASE_DIRECT_URL carries LISTEN/NOTIFY. A fixed-rate mixed load
 * (reads, bookings, logins) runs for HAVEN_SCALE_SECONDS (default 60; 15 for a short run) with one
 * SSE subscriber per instance; instance 2 is SIGKILLed midway. Requests that fail on the killed
 * instance (connection reset / 502 / 503) are retried by the generator; every other failure
 * counts as an error. Every booking event must reach both subscribers (the one on the killed
 * instance reconnects through HAProxy and resumes from its last event id).
 */
const SECONDS = Number(process.env.HAVEN_SCALE_SECONDS ?? "15");
const RATE = Number(process.env.HAVEN_SCALE_RATE ?? "10"); // requests per second
const PORTS = { haproxy: 45530, s1: 45531, s2: 45532, pgbouncer: 45521 };

let h: Harness;
let clinic: Clinic;
let work: string;
let logDir: string;
/** Portal accounts the logins rotate over (the per-account throttle counts in-flight attempts). */
const loginUsers: TestUser[] = [];
const procs: ChildProcess[] = [];
const instances = new Map<"s1" | "s2", ChildProcess>();

async function waitFor(check: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const ready = (port: number) => async () =>
  (await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) })).status ===
  200;

/** fetch with a 10 s deadline: a request must fail, never hang, when its instance dies. */
const timedFetch: typeof fetch = (url, init) =>
  fetch(url, {
    ...init,
    signal: init?.signal
      ? AbortSignal.any([init.signal, AbortSignal.timeout(10_000)])
      : AbortSignal.timeout(10_000),
  });

const progress = (msg: string) => console.log(`[scale] ${new Date().toISOString()} ${msg}`);

beforeAll(async () => {
  for (const p of Object.values(PORTS)) {
    if (await portInUse(p)) throw new Error(`port ${p} in use (a stale run?)`);
  }
  h = await createHarness();
  clinic = await makeClinic(h);
  // Open every day around the clock, 15-minute slots: room for every booking of the run.
  await setHours(
    h,
    clinic.organizationId,
    clinic.practitionerId,
    [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({
      weekday,
      start: "00:00",
      end: "23:45",
      slotMinutes: 15,
    })),
  );
  for (let i = 0; i < 30; i++)
    loginUsers.push(await makeUser(h.deps, "patient", clinic.organizationId));
  work = await mkdtemp(join(tmpdir(), "haven-scale-"));
  logDir = await mkdtemp(join(tmpdir(), "haven-scale-logs-"));
  await chmod(work, 0o755);
  const dbName = new URL(h.testDb.url).pathname.slice(1);

  // PgBouncer (runs as the postgres OS user: it refuses root), transaction pooling.
  await writeFile(join(work, "userlist.txt"), '"postgres" ""\n', { mode: 0o644 });
  await writeFile(
    join(work, "pgbouncer.ini"),
    [
      "[databases]",
      `${dbName} = host=127.0.0.1 port=5432 dbname=${dbName}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${PORTS.pgbouncer}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${join(work, "userlist.txt")}`,
      "pool_mode = transaction",
      "max_client_conn = 200",
      "default_pool_size = 8",
      "ignore_startup_parameters = extra_float_digits,options",
      "",
    ].join("\n"),
    { mode: 0o644 },
  );
  const bouncer = spawnAsClusterUser("/usr/sbin/pgbouncer", [join(work, "pgbouncer.ini")]);
  procs.push(bouncer);
  await waitFor(() => portInUse(PORTS.pgbouncer), "PgBouncer");

  // Two Haven instances: queries through PgBouncer, LISTEN on a direct connection.
  const keyring = h.deps.crypto.keyring;
  const pooled = `postgres://postgres@127.0.0.1:${PORTS.pgbouncer}/${dbName}`;
  for (const name of ["s1", "s2"] as const) {
    const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
      env: {
        ...process.env,
        NODE_ENV: "test",
        PORT: String(PORTS[name]),
        HOST: "127.0.0.1",
        DATABASE_URL: pooled,
        DATABASE_DIRECT_URL: h.testDb.url,
        HAVEN_MIGRATE_ON_START: "false",
        HAVEN_DEMO: "false",
        HAVEN_DATA_DIR: join(work, name),
        HAVEN_PHI_KEYS: `${keyring.activeKeyId}:${keyring.key(keyring.activeKeyId).toString("base64")}`,
        HAVEN_BLIND_INDEX_KEY: keyring.blindIndexKey.toString("base64"),
        LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "ignore", openSync(join(logDir, `${name}.log`), "w")],
    });
    procs.push(child);
    instances.set(name, child);
  }
  await waitFor(ready(PORTS.s1), "Haven s1", 60_000);
  await waitFor(ready(PORTS.s2), "Haven s2", 60_000);

  // HAProxy: round-robin, health check /readyz, names the server that answered.
  await writeFile(
    join(work, "haproxy.cfg"),
    [
      "global",
      "  maxconn 1000",
      "defaults",
      "  mode http",
      "  timeout connect 1s",
      "  timeout client 5m",
      "  timeout server 5m",
      "  retries 2",
      "  option redispatch",
      "frontend fe",
      `  bind 127.0.0.1:${PORTS.haproxy}`,
      "  default_backend haven",
      "backend haven",
      "  balance roundrobin",
      "  option httpchk GET /readyz",
      "  http-check expect status 200",
      "  timeout check 3s",
      "  default-server inter 1s fall 2 rise 2",
      "  http-response set-header X-Haven-Server %s",
      `  server s1 127.0.0.1:${PORTS.s1} check`,
      `  server s2 127.0.0.1:${PORTS.s2} check`,
      "",
    ].join("\n"),
  );
  const haproxy = spawn("/usr/sbin/haproxy", ["-db", "-f", join(work, "haproxy.cfg")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  procs.push(haproxy);
  await waitFor(ready(PORTS.haproxy), "HAProxy");
  progress("PgBouncer, two instances and HAProxy up");
}, 180_000);

afterAll(async () => {
  for (const p of procs.reverse()) {
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
  }
  await new Promise((r) => setTimeout(r, 500));
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  if (work) await rm(work, { recursive: true, force: true });
  progress(`instance logs kept in ${logDir}`);
  await h?.close();
}, 60_000);

/** Failures that mean "the instance went away under this request": retried by the generator. */
function retryable(err: unknown): boolean {
  const e = err as { message?: string; data?: { httpStatus?: number }; cause?: unknown };
  const status = e.data?.httpStatus;
  if (status === 502 || status === 503 || status === 504) return true;
  const text = `${e.message ?? ""} ${String((e.cause as { message?: string })?.message ?? "")}`;
  return /fetch failed|ECONNRESET|socket hang up|other side closed|terminated|Unexpected end|JSON|aborted|timeout/i.test(
    text,
  );
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

describe("two instances behind HAProxy, PgBouncer in transaction pooling", () => {
  it(
    `${SECONDS} s of mixed load at ${RATE} req/s with one instance killed midway`,
    async () => {
      const lb = `http://127.0.0.1:${PORTS.haproxy}`;
      const token = await loginWithMfa(h, lb, clinic.staff);
      const sdk = createHavenClient({ url: lb, token, fetch: timedFetch });
      progress("staff signed in through HAProxy");

      // One SSE subscriber per instance (through HAProxy; the response header says which).
      const subscribers = [0, 1].map(() => ({
        server: [] as string[],
        appointments: new Set<string>(),
        errors: [] as string[],
        states: [] as string[],
      }));
      // The SSE client gives up on a non-200 answer (HAProxy's 503 while the killed server is still
      // marked up), so a subscriber resubscribes after an error, resuming after its last event id.
      const subs: { unsubscribe(): void }[] = [];
      let stopping = false;
      for (const s of subscribers) {
        const client = createHavenClient({
          url: lb,
          token,
          fetch: async (url, init) => {
            const res = await fetch(url, init);
            if (String(url).includes("onChange")) {
              s.server.push(`${res.headers.get("x-haven-server") ?? "haproxy"}:${res.status}`);
            }
            return res;
          },
        });
        let lastEventId: string | undefined;
        const start = () => {
          const sub = client.appointments.onChange.subscribe(
            { organizationId: clinic.organizationId, ...(lastEventId ? { lastEventId } : {}) },
            {
              onData: (e) => {
                lastEventId = e.id;
                if (e.data.kind === "booked") s.appointments.add(e.data.appointment.id);
              },
              onConnectionStateChange: (st) => {
                if (st.state !== "pending") s.states.push(`${st.state}:${st.error?.message ?? ""}`);
              },
              onError: (err) => {
                s.errors.push(err.message);
                sub.unsubscribe();
                if (!stopping) setTimeout(start, 300);
              },
            },
          );
          subs.push(sub);
        };
        start();
        await waitFor(async () => s.server.length > 0, "SSE subscriber");
      }
      expect(new Set(subscribers.map((s) => s.server[0])).size).toBe(2);

      const from = new Date(Date.now() + 2 * 86_400_000);
      const { slots } = await sdk.appointments.slots.query({
        practitionerId: clinic.practitionerId,
        from,
        to: new Date(from.getTime() + 14 * 86_400_000),
      });
      let nextSlot = 0;

      const latencies: number[] = [];
      const errors: string[] = [];
      const booked: string[] = [];
      let retries = 0;
      let ambiguousBookings = 0;
      let completed = 0;
      const kinds = { read: 0, book: 0, login: 0 };

      const pending = new Map<number, string>();
      const one = async (i: number): Promise<void> => {
        const kind = i % 20 < 12 ? "read" : i % 20 < 17 ? "book" : "login";
        kinds[kind]++;
        pending.set(i, kind);
        const slot = kind === "book" ? slots[nextSlot++] : undefined;
        const started = performance.now();
        for (let attempt = 0; ; attempt++) {
          try {
            if (kind === "read") {
              await sdk.patients.get.query({ patientId: clinic.patient.id });
            } else if (kind === "book") {
              if (!slot) throw new Error("ran out of slots");
              const a = await sdk.appointments.book.mutate({
                practitionerId: clinic.practitionerId,
                patientId: clinic.patient.id,
                startsAt: slot.startsAt,
                reason: "load test visit",
              });
              booked.push(a.id);
            } else {
              await createHavenClient({ url: lb, fetch: timedFetch }).auth.login.mutate({
                email: clinic.patient.user.email,
                password: clinic.patient.user.password,
              });
            }
            break;
          } catch (err) {
            const code = (err as { data?: { code?: string } }).data?.code;
            // A booking that committed on the killed instance before its answer was lost: the retry
            // finds its own slot taken. Not an error of the system; counted separately.
            if (kind === "book" && attempt > 0 && code === "CONFLICT") {
              ambiguousBookings++;
              break;
            }
            if (attempt < 8 && retryable(err)) {
              retries++;
              await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
              continue;
            }
            errors.push(`${kind}: ${code ?? (err as Error).message}`);
            break;
          }
        }
        latencies.push(performance.now() - started);
        completed++;
        pending.delete(i);
      };

      const total = SECONDS * RATE;
      const startedAt = performance.now();
      const inflight: Promise<void>[] = [];
      let killedAt = 0;
      for (let i = 0; i < total; i++) {
        const due = startedAt + (i * 1000) / RATE;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (!killedAt && i >= total / 2) {
          instances.get("s2")?.kill("SIGKILL");
          killedAt = performance.now() - startedAt;
          progress(`SIGKILL s2 after ${i} requests`);
        }
        inflight.push(one(i));
      }
      progress(`all ${total} requests sent`);
      const watchdog = setInterval(
        () => progress(`${pending.size} pending: ${JSON.stringify([...pending].slice(0, 10))}`),
        5000,
      );
      await Promise.all(inflight);
      clearInterval(watchdog);
      progress("all requests settled");
      const elapsed = (performance.now() - startedAt) / 1000;

      // Let the fan-out settle, then every booking must have reached both subscribers.
      await waitFor(
        async () => subscribers.every((s) => booked.every((id) => s.appointments.has(id))),
        "booking events on both subscribers",
        20_000,
      ).catch(() => {});
      stopping = true;
      for (const s of subs) s.unsubscribe();

      const sorted = [...latencies].sort((a, b) => a - b);
      const report = {
        seconds: SECONDS,
        rate: RATE,
        requests: completed,
        mix: kinds,
        throughputPerSecond: Number((completed / elapsed).toFixed(1)),
        errors: errors.length,
        errorSamples: errors.slice(0, 5),
        retriedAfterKill: retries,
        ambiguousBookings,
        p50ms: Math.round(percentile(sorted, 50)),
        p99ms: Math.round(percentile(sorted, 99)),
        maxMs: Math.round(sorted.at(-1) ?? 0),
        killedS2AtSecond: Number((killedAt / 1000).toFixed(1)),
        bookings: booked.length,
        subscribers: subscribers.map((s) => ({
          servedBy: s.server,
          bookingEventsReceived: booked.filter((id) => s.appointments.has(id)).length,
          errors: s.errors,
          states: s.states.slice(0, 10),
        })),
      };
      console.log(`[scale] ${JSON.stringify(report)}`);
      expect(errors).toEqual([]);
      for (const s of subscribers) {
        expect(booked.filter((id) => !s.appointments.has(id))).toEqual([]);
      }
      expect(instances.get("s2")?.signalCode).toBe("SIGKILL");
    },
    SECONDS * 1000 + 150_000,
  );
});
