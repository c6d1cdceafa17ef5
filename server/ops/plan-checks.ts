import { createHash } from "node:crypto";
import type postgres from "postgres";
import { listDay, listForPractitioner } from "../appointments/lists.ts";
import { verifyAuditChain } from "../audit/chain.ts";
import { accountingForPatient, searchAudit } from "../audit/queries.ts";
import type { PhiCrypto } from "../crypto/phi.ts";
import type { AuditActor } from "../kernel/audit.ts";
import type { Actor } from "../kernel/roles.ts";
import { getPatient, searchPatients } from "../patients/service.ts";
import { claimDue } from "../reminders/service.ts";
import { DEFAULT_REMINDER_SETTINGS } from "../reminders/settings.ts";
import { findSlots } from "../scheduling/service.ts";
import { localDateOf } from "../scheduling/slots.ts";
import {
  type CapturedQuery,
  capturingDatabase,
  type ExplainedPlan,
  explainAnalyze,
  indexesUsed,
  seqScannedTables,
} from "./plans.ts";

/** The UUID {@link generateVolume} gives the n-th row of a kind (`md5('kind:n')::uuid`). */
export function volumeId(kind: string, n: number): string {
  const h = createHash("md5").update(`${kind}:${n}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Tables that grow with the clinic: a sequential scan on any of them fails a check. */
export const LARGE_TABLES = [
  "patients",
  "care_relationships",
  "clinical_entries",
  "appointments",
  "appointment_changes",
  "reminders",
  "audit_events",
  "audit_chain",
  "sessions",
  "users",
] as const;

/** One hot query: how to make the app issue it, how to recognise it, and what its plan must use. */
export interface HotQuery {
  name: string;
  /** Run the real service function (errors after the query ran are expected: data is not sealed). */
  run(db: ReturnType<typeof capturingDatabase>): Promise<unknown>;
  /** Picks the statement to explain among those the run issued. */
  match: (q: CapturedQuery) => boolean;
  /** At least one of these indexes must appear in the plan. */
  expectIndex: string[];
  /**
   * The check holds only from this many audit events on: below it a sequential scan is the
   * planner's right answer (5,000 ids out of 100k rows), so smaller volumes do not run it.
   */
  minAuditEvents?: number;
}

/** A checked plan: the statement, the indexes it used and any large table it scanned sequentially. */
export interface PlanCheck {
  name: string;
  sql: string;
  indexes: string[];
  seqScans: string[];
  expected: string[];
  plan: ExplainedPlan;
}

/** The hot queries of issue 15, issued by the same service functions the procedures call. */
export function hotQueries(crypto: PhiCrypto, now: Date): HotQuery[] {
  const org = volumeId("org", 0);
  const clinician: Actor = {
    userId: volumeId("user", 0),
    role: "clinician",
    organizationId: org,
    sessionId: "plan-check",
    patientId: null,
    practitionerId: volumeId("prac", 0),
  };
  const staff: Actor = { ...clinician, role: "staff", practitionerId: null };
  const admin: Actor = { ...staff, role: "admin" };
  const service: Actor = { ...staff, role: "service" };
  const audit = (a: Actor): AuditActor => ({
    userId: a.userId,
    role: a.role,
    sessionId: a.sessionId,
    organizationId: a.organizationId,
    ip: null,
    requestId: null,
  });
  const deps = (c: ReturnType<typeof capturingDatabase>) => ({ db: c.db, crypto, now: () => now });
  const patientId = volumeId("pat", 0);
  const week = new Date(now.getTime() + 7 * 86_400_000);
  const has =
    (...parts: string[]) =>
    (q: CapturedQuery) =>
      parts.every((p) => q.sql.includes(p));
  return [
    {
      name: "patient by id",
      run: (c) => getPatient(deps(c), clinician, audit(clinician), { patientId, entryLimit: 20 }),
      // One statement reads the row and the clinician's access facts (correlated subqueries
      // first, so the id is not always $1).
      match: (q) =>
        q.sql.includes('from "patients"') && /where "patients"\."id" = \$\d+ limit/.test(q.sql),
      expectIndex: ["patients_pkey"],
    },
    {
      name: "patient access facts (care relationship)",
      run: (c) => getPatient(deps(c), clinician, audit(clinician), { patientId, entryLimit: 20 }),
      match: has('from "care_relationships"'),
      expectIndex: ["care_relationships_practitioner_idx", "care_relationships_unique"],
    },
    {
      name: "search by MRN (blind index)",
      run: (c) => searchPatients(deps(c), staff, audit(staff), { mrn: "MRN-0000042" }),
      match: has('from "patients"', '"mrn_index" = $1'),
      expectIndex: ["patients_mrn_idx"],
    },
    {
      name: "search by family name + birth date (blind index)",
      run: (c) =>
        searchPatients(deps(c), staff, audit(staff), { family: "Smith", birthDate: "1970-01-01" }),
      match: has('from "patients"', '"family_birth_index" = $1'),
      expectIndex: ["patients_family_birth_idx"],
    },
    {
      name: "day schedule",
      run: (c) =>
        listDay(deps(c), staff, audit(staff), {
          organizationId: org,
          date: localDateOf(now, "America/New_York"),
          limit: 50,
        }),
      match: has('from "appointments"', '"appointments"."organization_id" = $'),
      expectIndex: ["appointments_org_time_idx"],
    },
    {
      name: "practitioner calendar",
      run: (c) =>
        listForPractitioner(deps(c), clinician, audit(clinician), {
          from: now,
          to: week,
          limit: 50,
        }),
      match: has('from "appointments"', '"appointments"."practitioner_id" = $'),
      expectIndex: ["appointments_practitioner_idx"],
    },
    {
      name: "slots (busy intervals)",
      run: (c) =>
        findSlots(deps(c), clinician, audit(clinician), {
          practitionerId: volumeId("prac", 0),
          from: now,
          to: week,
        }),
      match: has('from "appointments"', '"appointments"."status" in'),
      expectIndex: [
        "appointments_practitioner_active_idx",
        "appointments_practitioner_idx",
        "appointments_no_overlap",
      ],
    },
    {
      name: "reminder claim (pending)",
      run: (c) =>
        claimDue(deps(c), DEFAULT_REMINDER_SETTINGS, service, audit(service), {
          limit: 50,
          leaseSeconds: 300,
          channels: ["email", "sms"],
        }),
      match: has('from "reminders"', '"reminders"."next_attempt_at" <= $', "skip locked"),
      expectIndex: ["reminders_claimable_idx"],
    },
    {
      name: "reminder claim (expired leases)",
      run: (c) =>
        claimDue(deps(c), DEFAULT_REMINDER_SETTINGS, service, audit(service), {
          limit: 50,
          leaseSeconds: 300,
          channels: ["email", "sms"],
        }),
      match: has('from "reminders"', '"reminders"."lease_until" <= $', "skip locked"),
      expectIndex: ["reminders_lease_idx"],
    },
    {
      name: "audit by patient (accounting of disclosures)",
      run: (c) => accountingForPatient(deps(c), admin, audit(admin), { patientId, limit: 50 }),
      match: has('from "audit_events"', '"audit_events"."patient_id" = $'),
      expectIndex: ["audit_events_patient_idx"],
    },
    {
      name: "audit by actor and time",
      run: (c) =>
        searchAudit(deps(c), admin, audit(admin), {
          actorUserId: volumeId("user", 7),
          from: new Date(now.getTime() - 30 * 86_400_000),
          to: now,
          limit: 50,
        }),
      match: has('from "audit_events"', '"audit_events"."actor_user_id" = $'),
      expectIndex: ["audit_events_actor_idx"],
    },
    {
      name: "chain verification scan (links page)",
      run: (c) => verifyAuditChain(c.db, { batchSize: 5000 }),
      match: has('from "audit_chain"', 'order by "audit_chain"."seq"'),
      expectIndex: ["audit_chain_pkey"],
    },
    {
      name: "chain verification scan (events of a page)",
      run: (c) => verifyAuditChain(c.db, { batchSize: 5000 }),
      match: has('from "audit_events"', '"audit_events"."id" in'),
      expectIndex: ["audit_events_pkey"],
      minAuditEvents: 1_000_000,
    },
  ];
}

/**
 * Run one hot query through its service function on a capturing handle, then EXPLAIN ANALYZE the
 * statement it issued. Statements after the first match are not executed (the capture aborts), so
 * a chain verification reads one page, not the whole table.
 * @throws Error when the service issued no matching statement (the check would be meaningless)
 */
export async function checkPlan(client: postgres.Sql, q: HotQuery): Promise<PlanCheck> {
  const capture = capturingDatabase(client, q.match);
  await q.run(capture).catch(() => {});
  const found = capture.queries.find(q.match);
  if (!found) throw new Error(`${q.name}: the service issued no matching statement`);
  const plan = await explainAnalyze(client, found);
  return {
    name: q.name,
    sql: found.sql,
    indexes: indexesUsed(plan.root),
    seqScans: seqScannedTables(plan.root).filter((t) =>
      (LARGE_TABLES as readonly string[]).includes(t),
    ),
    expected: q.expectIndex,
    plan,
  };
}
