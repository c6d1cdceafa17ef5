import type postgres from "postgres";

/** How much data {@link generateVolume} writes (issue 15: 10k / 100k / 1M at full size). */
export interface VolumeSize {
  organizations: number;
  /** Practitioners, spread evenly over the organizations. */
  practitioners: number;
  patients: number;
  appointments: number;
  /** Audit events; every one is also sealed into `audit_chain` (seq 1..n). */
  auditEvents: number;
}

/** The volume the issue asks for: 10k patients, 100k appointments, 1M audit events. */
export const FULL_VOLUME: VolumeSize = {
  organizations: 5,
  practitioners: 100,
  patients: 10_000,
  appointments: 100_000,
  auditEvents: 1_000_000,
};

/** Wall time of each generation step, in milliseconds, and the row counts written. */
export interface VolumeReport {
  size: VolumeSize;
  stepsMs: Record<string, number>;
  totalMs: number;
  rows: Record<string, number>;
}

/**
 * A deterministic UUID for the n-th generated row of a kind (md5 of `kind:n`), so later steps can
 * reference earlier rows without a join (e.g. the chain link of event n).
 */
const uid = (kind: string, n: string) => `md5('${kind}:' || ${n})::uuid`;

/** ~`hexChars` characters of pseudo-random hex: stands in for a sealed value (never decrypted). */
const blob = (seed: string, hexChars: number) =>
  Array.from({ length: Math.ceil(hexChars / 32) }, (_, i) => `md5(${seed} || ':${i}')`).join(
    " || ",
  );

/**
 * Fill an empty, migrated Haven database with a realistic volume using set-based SQL
 * (`generate_series`, one INSERT … SELECT per table), then ANALYZE. Encrypted columns hold
 * realistic-size pseudo-random text (plans never decrypt); blind indexes are distinct 43-character
 * strings like real base64url HMACs. Appointments are 30 minutes, 12 hours apart per practitioner
 * (so the exclusion constraint holds), from 250 days ago onwards; past ones are completed, future
 * ones booked, each with an e-mail reminder 24 h before (sent or pending). Audit events span the
 * last 365 days, 80 % about a patient, by 200 distinct actors.
 * @returns per-step and total wall time (ms) and the row counts
 * @throws the driver's error when the database is not empty or not migrated
 */
export async function generateVolume(
  sql: postgres.Sql,
  size: VolumeSize = FULL_VOLUME,
): Promise<VolumeReport> {
  const stepsMs: Record<string, number> = {};
  const started = performance.now();
  const step = async (name: string, text: string) => {
    const t = performance.now();
    await sql.unsafe(text);
    stepsMs[name] = Math.round(performance.now() - t);
  };
  const { organizations: o, practitioners: pr, patients: pa, appointments: ap } = size;
  const ae = size.auditEvents;
  await step(
    "organizations",
    `INSERT INTO organizations (id, name, timezone)
     SELECT ${uid("org", "g")}, 'Clinic ' || g, 'America/New_York' FROM generate_series(0, ${o - 1}) g`,
  );
  await step(
    "practitioners",
    `INSERT INTO practitioners (id, organization_id, name, npi)
     SELECT ${uid("prac", "g")}, ${uid("org", `(g % ${o})`)}, 'Dr ' || g, lpad(g::text, 10, '0')
     FROM generate_series(0, ${pr - 1}) g;
     INSERT INTO availability_rules (id, organization_id, practitioner_id, weekday, start_time, end_time, slot_minutes)
     SELECT ${uid("rule", "(g * 7 + d)")}, ${uid("org", `(g % ${o})`)}, ${uid("prac", "g")}, d, '09:00', '17:00', 30
     FROM generate_series(0, ${pr - 1}) g, generate_series(1, 5) d`,
  );
  await step(
    "patients",
    `INSERT INTO patients (id, organization_id, fhir_id, demographics, resource, mrn_index, email_index, family_birth_index)
     SELECT ${uid("pat", "g")}, ${uid("org", `(g % ${o})`)},
       left(encode(decode(md5('fhir:' || g) || md5('fhir2:' || g), 'hex'), 'base64'), 43),
       'v1:k1:' || ${blob("'demo' || g", 480)},
       'v1:k1:' || ${blob("'res' || g", 1600)},
       left(encode(decode(md5('mrn:' || g) || md5('mrn2:' || g), 'hex'), 'base64'), 43),
       left(encode(decode(md5('mail:' || g) || md5('mail2:' || g), 'hex'), 'base64'), 43),
       left(encode(decode(md5('fb:' || (g / 2)) || md5('fb2:' || (g / 2)), 'hex'), 'base64'), 43)
     FROM generate_series(0, ${pa - 1}) g`,
  );
  await step(
    "care_relationships",
    `INSERT INTO care_relationships (id, organization_id, patient_id, practitioner_id, source, valid_from)
     SELECT ${uid("care", "g")}, ${uid("org", `(g % ${o})`)}, ${uid("pat", "g")},
       ${uid("prac", `((g % ${o}) + ${o} * ((g / ${o}) % ${Math.max(1, Math.floor(pr / o))}))`)},
       'encounter', now() - interval '400 days'
     FROM generate_series(0, ${pa - 1}) g`,
  );
  // Appointment g: practitioner g % pr, its (g / pr)-th visit, 12 h after the previous one; the
  // patient is of the practitioner's organization (pr and o divide, practitioner p is in org p % o).
  await step(
    "appointments",
    `INSERT INTO appointments (id, organization_id, patient_id, practitioner_id, starts_at, ends_at, status, reason, version)
     SELECT ${uid("appt", "g")}, ${uid("org", `((g % ${pr}) % ${o})`)},
       ${uid("pat", `((((g * 7919) % ${pa}) / ${o}) * ${o} + (g % ${pr}) % ${o})`)},
       ${uid("prac", `(g % ${pr})`)}, s, s + interval '30 minutes',
       (CASE WHEN s < now() THEN 'completed' ELSE 'booked' END)::appointment_status,
       'v1:k1:' || ${blob("'why' || g", 96)}, 1
     FROM generate_series(0, ${ap - 1}) g,
       LATERAL (SELECT date_trunc('hour', now()) - interval '250 days'
                       + (g / ${pr}) * interval '12 hours' + ((g % 16) * interval '30 minutes') AS s) t`,
  );
  await step(
    "reminders",
    `INSERT INTO reminders (id, organization_id, appointment_id, channel, offset_minutes, due_at, status, attempts, next_attempt_at, sent_at)
     SELECT ${uid("rem", "g")}, a.organization_id, a.id, 'email', 1440, a.starts_at - interval '1 day',
       (CASE WHEN a.starts_at - interval '1 day' < now() - interval '1 hour' THEN 'sent' ELSE 'pending' END)::reminder_status,
       (CASE WHEN a.starts_at - interval '1 day' < now() - interval '1 hour' THEN 1 ELSE 0 END),
       a.starts_at - interval '1 day',
       (CASE WHEN a.starts_at - interval '1 day' < now() - interval '1 hour' THEN a.starts_at - interval '1 day' END)
     FROM generate_series(0, ${ap - 1}) g JOIN appointments a ON a.id = ${uid("appt", "g")}`,
  );
  await step(
    "audit_events",
    `INSERT INTO audit_events (id, occurred_at, actor_user_id, actor_role, session_id, organization_id,
                               action, resource_type, resource_id, patient_id, outcome, ip, request_id, details)
     SELECT ${uid("ev", "g")}, now() - interval '365 days' + g * (interval '365 days' / ${ae}),
       ${uid("user", "(g % 200)")}, (CASE WHEN g % 200 < 150 THEN 'clinician' ELSE 'staff' END)::role,
       md5('sess:' || (g / 50)), ${uid("org", `(g % ${o})`)},
       (ARRAY['patient.read','patient.search','appointment.book','appointment.list','auth.login'])[1 + g % 5],
       'Patient', ${uid("pat", `((g * 31) % ${pa})`)}::text,
       CASE WHEN g % 5 = 4 THEN NULL ELSE ${uid("pat", `((g * 31) % ${pa})`)} END,
       (CASE WHEN g % 97 = 0 THEN 'denied' ELSE 'allowed' END)::audit_outcome,
       '10.0.' || (g % 250) || '.' || (g % 200), md5('req:' || g), jsonb_build_object('entries', g % 20)
     FROM generate_series(0, ${ae - 1}) g`,
  );
  await step(
    "audit_chain",
    `INSERT INTO audit_chain (seq, event_id, prev_hash, hash, sealed_at)
     SELECT g + 1, ${uid("ev", "g")},
       CASE WHEN g = 0 THEN repeat('0', 64) ELSE md5('h:' || (g - 1)) || md5('h2:' || (g - 1)) END,
       md5('h:' || g) || md5('h2:' || g), now()
     FROM generate_series(0, ${ae - 1}) g`,
  );
  await step(
    "analyze",
    "ANALYZE organizations, practitioners, availability_rules, patients, care_relationships, appointments, reminders, audit_events, audit_chain",
  );
  const rows: Record<string, number> = {};
  for (const table of ["patients", "appointments", "reminders", "audit_events", "audit_chain"]) {
    const [r] = await sql.unsafe<{ n: string }[]>(`SELECT count(*) AS n FROM ${table}`);
    rows[table] = Number(r?.n ?? 0);
  }
  return { size, stepsMs, totalMs: Math.round(performance.now() - started), rows };
}
