/**
 * The floor: raw Fastify + postgres.js doing the same work as Haven's hot paths, with no tRPC,
 * superjson, zod or drizzle — the reference every ratio is taken against.
 *
 * - `GET /trpc/patients.get?input=…` (and the `?batch=1` form): the same session lookup (SHA-256
 *   of the bearer token, the same join, expiry/idle/MFA checks, `last_seen_at` at most once a
 *   minute), the same patient and entry rows (one access query instead of three), AES-GCM
 *   decryption through the same envelope code, one audit INSERT per read, and the same bytes
 *   on the wire as tRPC + superjson (checked by the orchestrator).
 * - `GET /hello`: Fastify's hello world (the `/healthz` reference).
 * - `POST /login` `{ email, password }`: user lookup by blind index + argon2id verify.
 *
 * Environment: DATABASE_URL, HAVEN_PHI_KEYS, HAVEN_BLIND_INDEX_KEY. Prints `{ url, pid }`.
 */
import { createHash } from "node:crypto";
import { verify } from "@node-rs/argon2";
import Fastify from "fastify";
import postgres from "postgres";
import { v7 as uuidv7 } from "uuid";
import { Keyring, parseEnvKeys } from "../../server/crypto/keyring.ts";
import { PhiCrypto } from "../../server/crypto/phi.ts";
import type { Demographics } from "../../server/kernel/demographics.ts";
import { patientViewFor } from "../../server/patients/policy.ts";

const env = process.env;
const material = parseEnvKeys(env.HAVEN_PHI_KEYS ?? "", env.HAVEN_BLIND_INDEX_KEY ?? "");
const crypto = new PhiCrypto(new Keyring(material));
const sql = postgres(env.DATABASE_URL ?? "", { max: 10, onnotice: () => {} });
const IDLE_MS = 15 * 60_000;
const TOUCH_MS = 60_000;

interface Session {
  id: string;
  userId: string;
  role: string;
  organizationId: string;
  practitionerId: string | null;
  patientId: string | null;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(code);
  }
}

async function session(authorization: string | undefined): Promise<Session> {
  const token = authorization?.startsWith("Bearer ") ? authorization.slice(7) : "";
  const id = createHash("sha256").update(token).digest("hex");
  const [row] = await sql`
    SELECT s.user_id, s.expires_at, s.last_seen_at, s.mfa_verified, u.role, u.organization_id,
           u.disabled_at, p.id AS patient_id, pr.id AS practitioner_id
    FROM sessions s JOIN users u ON u.id = s.user_id
    LEFT JOIN patients p ON p.user_id = u.id
    LEFT JOIN practitioners pr ON pr.user_id = u.id
    WHERE s.id = ${id} LIMIT 1`;
  if (!row || row.disabled_at) throw new HttpError(401, "UNAUTHORIZED");
  const now = Date.now();
  const privileged = row.role !== "patient";
  const lastSeen = (row.last_seen_at as Date).getTime();
  if (now >= (row.expires_at as Date).getTime() || (privileged && now >= lastSeen + IDLE_MS)) {
    throw new HttpError(401, "UNAUTHORIZED");
  }
  if (privileged && !row.mfa_verified) throw new HttpError(403, "FORBIDDEN");
  if (now - lastSeen >= TOUCH_MS) {
    await sql`UPDATE sessions SET last_seen_at = ${new Date(now)} WHERE id = ${id} AND last_seen_at < ${new Date(now)}`;
  }
  return {
    id,
    userId: row.user_id,
    role: row.role,
    organizationId: row.organization_id,
    practitionerId: row.practitioner_id,
    patientId: row.patient_id,
  };
}

/** One `patients.get` for a clinician with a care relationship: the superjson `{json, meta}`. */
async function getPatient(
  s: Session,
  input: { patientId: string; entryLimit?: number },
  requestId: string,
  ip: string,
): Promise<string> {
  const limit = input.entryLimit ?? 200;
  const now = new Date();
  const [p] = await sql`
    SELECT p.id, p.organization_id, p.version, p.demographics,
      EXISTS (SELECT 1 FROM care_relationships c WHERE c.patient_id = p.id
              AND c.practitioner_id = ${s.practitionerId} AND c.valid_from <= ${now}
              AND (c.valid_to IS NULL OR c.valid_to > ${now})) AS care
    FROM patients p WHERE p.id = ${input.patientId}`;
  if (!p) throw new HttpError(404, "NOT_FOUND");
  if (s.role !== "clinician" || !p.care) throw new HttpError(403, "FORBIDDEN");
  const rows = await sql`
    SELECT id, kind, recorded_at, source, body FROM clinical_entries
    WHERE patient_id = ${p.id} ORDER BY recorded_at DESC, id DESC LIMIT ${limit + 1}`;
  const n = Math.min(rows.length, limit);
  const entries: string[] = [];
  const meta: string[] = [];
  for (let i = 0; i < n; i++) {
    const e = rows[i] as {
      id: string;
      kind: string;
      recorded_at: Date;
      source: string;
      body: string;
    };
    const resource = crypto.open<unknown>("clinical_entries", "body", e.id, e.body);
    entries.push(
      `{"id":${JSON.stringify(e.id)},"kind":${JSON.stringify(e.kind)},"recordedAt":"${e.recorded_at.toISOString()}","source":${JSON.stringify(e.source)},"resource":${JSON.stringify(resource)}}`,
    );
    meta.push(`"entries.${i}.recordedAt":["Date"]`);
  }
  await sql`
    INSERT INTO audit_events (id, occurred_at, actor_user_id, actor_role, session_id,
      organization_id, action, resource_type, resource_id, patient_id, outcome, reason, ip,
      request_id, details)
    VALUES (${uuidv7()}, ${now}, ${s.userId}, ${s.role}, ${s.id}, ${s.organizationId},
      'patient.read', 'Patient', ${p.id}, ${p.id}, 'allowed', NULL, ${ip}, ${requestId},
      ${sql.json({ entries: n, clinicalBodies: true, basis: "care_relationship" })})`;
  const d = crypto.open<Demographics>("patients", "demographics", p.id, p.demographics);
  const json = `{"id":${JSON.stringify(p.id)},"organizationId":${JSON.stringify(p.organization_id)},"version":${p.version},"access":"care_relationship","demographics":${JSON.stringify(pick(d))},"entries":[${entries.join(",")}],"entriesTruncated":${rows.length > limit}}`;
  return meta.length > 0
    ? `{"json":${json},"meta":{"values":{${meta.join(",")}},"v":1}}`
    : `{"json":${json}}`;
}

/** The clinician's demographics whitelist, field by field (the same minimum-necessary view). */
const FIELDS = patientViewFor("clinician").demographicFields;
function pick(d: Demographics): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of FIELDS) out[f] = d[f];
  return out;
}

const app = Fastify({ logger: false, routerOptions: { maxParamLength: 4096 } });
let seq = 0;

app.get("/hello", async () => ({ hello: "world" }));

app.get<{ Params: { path: string }; Querystring: { input?: string; batch?: string } }>(
  "/trpc/:path",
  async (req, reply) => {
    try {
      const s = await session(req.headers.authorization);
      const input = JSON.parse(req.query.input ?? "{}");
      const rid = `floor-${++seq}`;
      if (req.query.batch === "1") {
        const calls = req.params.path.split(",");
        const out: string[] = [];
        for (let i = 0; i < calls.length; i++) {
          out.push(
            `{"result":{"data":${await getPatient(s, input[String(i)].json, rid, req.ip)}}}`,
          );
        }
        return reply.type("application/json").send(`[${out.join(",")}]`);
      }
      const body = await getPatient(s, input.json, rid, req.ip);
      return reply.type("application/json").send(`{"result":{"data":${body}}}`);
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      return reply.code(status).send({ error: err instanceof HttpError ? err.code : "error" });
    }
  },
);

app.post<{ Body: { email: string; password: string } }>("/login", async (req, reply) => {
  const [u] =
    await sql`SELECT password_hash FROM users WHERE email_index = ${crypto.index("user.email", req.body.email)}`;
  const ok = u ? await verify(u.password_hash, req.body.password.normalize("NFKC")) : false;
  return reply.code(ok ? 200 : 401).send({ ok });
});

const url = await app.listen({ host: "127.0.0.1", port: 0 });
process.stdout.write(`${JSON.stringify({ url, pid: process.pid })}\n`);
process.on("SIGTERM", () => {
  void app.close().then(() => sql.end().then(() => process.exit(0)));
});
