/**
 * The load generator, run as its own process so its CPU is not the server's: autocannon against
 * one URL, from a JSON spec in argv[2]; prints one JSON line with req/s (2xx only), latency
 * percentiles (ms), counts of 2xx / non-2xx / errors.
 *
 * `book` makes every request a distinct `appointments.book` (patient and practitioner `k % n`, slot
 * `startMs + floor(k / n) * stepMs`, k counting from `offset`) so bookings do not collide.
 */
import autocannon from "autocannon";

/** What the orchestrator asks for. */
export interface LoadSpec {
  url: string;
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
  connections: number;
  durationS: number;
  /** Fixed overall request rate (req/s); absent = as fast as possible. */
  rate?: number;
  /** Request bodies used in turn (request k sends `bodies[k % n]`), e.g. several accounts' logins. */
  bodies?: string[];
  book?: {
    practitionerIds: string[];
    /** Same length as practitionerIds: booking k is for patient `k % n` with practitioner `k % n`. */
    patientIds: string[];
    startMs: number;
    stepMs: number;
    offset: number;
  };
}

/** What the loader prints. */
export interface LoadResult {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  ok: number;
  non2xx: number;
  errors: number;
  durationS: number;
}

const spec = JSON.parse(process.argv[2] ?? "{}") as LoadSpec;
let k = spec.book?.offset ?? 0;
const book = spec.book;
const bodies = spec.bodies && spec.bodies.length > 0 ? spec.bodies : undefined;
let b = 0;
const result = await autocannon({
  url: spec.url,
  method: spec.method ?? "GET",
  headers: spec.headers ?? {},
  ...(spec.body !== undefined ? { body: spec.body } : {}),
  connections: spec.connections,
  duration: spec.durationS,
  ...(spec.rate ? { overallRate: spec.rate } : {}),
  ...(book
    ? {
        requests: [
          {
            setupRequest: (req: autocannon.Request) => {
              const i = k++;
              const n = book.practitionerIds.length;
              const startsAt = new Date(book.startMs + Math.floor(i / n) * book.stepMs);
              return {
                ...req,
                body: JSON.stringify({
                  json: {
                    practitionerId: book.practitionerIds[i % n],
                    patientId: book.patientIds[i % n],
                    startsAt: startsAt.toISOString(),
                  },
                  meta: { values: { startsAt: ["Date"] }, v: 1 },
                }),
              };
            },
          },
        ],
      }
    : bodies
      ? {
          requests: [
            {
              setupRequest: (req: autocannon.Request) => ({
                ...req,
                body: bodies[b++ % bodies.length],
              }),
            },
          ],
        }
      : {}),
});
const ok = result["2xx"];
const out: LoadResult = {
  rps: ok / (result.duration || spec.durationS),
  p50: result.latency.p50,
  p90: result.latency.p90,
  p99: result.latency.p99,
  ok,
  non2xx: result.non2xx,
  errors: result.errors + result.timeouts,
  durationS: result.duration,
};
process.stdout.write(`${JSON.stringify(out)}\n`);
