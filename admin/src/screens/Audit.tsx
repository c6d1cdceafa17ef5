import type { RouterInputs, RouterOutputs } from "@haven/client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { Tab, TabList, TabPanel, Tabs } from "react-aria-components";
import { Link, useSearchParams } from "react-router";
import { fieldIssues, haven, isConflict, messageOf } from "../api.ts";
import {
  Pager,
  PatientPicker,
  SelectField,
  TableWrap,
  useClinicZone,
  useCursorPager,
} from "../ops-ui.tsx";
import type { Found } from "../PatientSearch.tsx";
import { useDraft } from "../session.tsx";
import { formatStamp, instantOfLocal, zoneLabel } from "../time.ts";
import { Button, Empty, ErrorNote, Field, Loading } from "../ui.tsx";

type Action = NonNullable<RouterInputs["audit"]["search"]["action"]>;
type Outcome = NonNullable<RouterInputs["audit"]["search"]["outcome"]>;
type AuditEvent = RouterOutputs["audit"]["search"]["items"][number];
type Disclosure = RouterOutputs["audit"]["forPatient"]["items"][number];
type Grant = RouterOutputs["audit"]["breakGlassReview"]["items"][number];
type Report = RouterOutputs["audit"]["verify"];

/** Every action `audit.search` accepts; `Missing` below fails the build when the server adds one. */
const ACTIONS = [
  "auth.login",
  "auth.login_failed",
  "auth.logout",
  "auth.login_throttled",
  "auth.lockout",
  "auth.logout_everywhere",
  "auth.session_revoked",
  "auth.session_expired",
  "auth.mfa_enrol_started",
  "auth.mfa_enrolled",
  "auth.mfa_verified",
  "auth.mfa_failed",
  "auth.mfa_reset",
  "auth.mfa_recovery_codes_regenerated",
  "auth.password_changed",
  "auth.password_reset_requested",
  "auth.password_reset",
  "auth.invitation_created",
  "auth.invitation_accepted",
  "auth.invitation_failed",
  "auth.invitation_revoked",
  "auth.invitation_off_file",
  "auth.role_changed",
  "auth.account_disabled",
  "auth.account_enabled",
  "auth.users_listed",
  "auth.invitations_listed",
  "auth.api_key_created",
  "auth.api_key_revoked",
  "access.denied",
  "patient.search",
  "patient.read",
  "appointment.list",
  "appointment.book",
  "appointment.reschedule",
  "appointment.cancel",
  "appointment.check_in",
  "appointment.complete",
  "appointment.no_show",
  "appointment.read",
  "appointment.subscribe",
  "availability.read",
  "availability.update",
  "fhir.import",
  "reminder.claim",
  "reminder.complete",
  "reminder.list",
  "reminder.stats",
  "reminder.retry",
  "audit.for_patient",
  "audit.search",
  "audit.verify",
  "audit.break_glass_review",
  "audit.break_glass_acknowledge",
  "access.break_glass",
  "access.break_glass_used",
  "access.break_glass_revoke",
  "patient.export",
  "keys.rotate",
  "keys.reindex",
  "ops.backup",
  "ops.restore",
] as const satisfies readonly Action[];
type Missing = Exclude<Action, (typeof ACTIONS)[number]>;
const allActionsListed: [Missing] extends [never] ? true : Missing = true;
void allActionsListed;

const OUTCOMES: { value: Outcome | ""; label: string }[] = [
  { value: "", label: "Any outcome" },
  { value: "allowed", label: "Allowed" },
  { value: "denied", label: "Denied" },
  { value: "error", label: "Error" },
];

const TABS = ["search", "patient", "verify", "break-glass"] as const;
type TabKey = (typeof TABS)[number];

const PAGE = 50;

/** `a1b2c3d4…` — enough of a UUID to tell rows apart; the full id is in the title/sr text. */
function shortId(id: string | null): string {
  return id ? `${id.slice(0, 8)}…` : "—";
}

/** From/to range fields in the clinic's zone; returns UTC instants or the field that is wrong. */
function useRange(tz: string) {
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const fromAt = from ? instantOfLocal(from, tz) : null;
  const toAt = to ? instantOfLocal(to, tz) : null;
  const local: Record<string, string> = {};
  if (from && !fromAt) local.from = "Enter a date and time";
  if (to && !toAt) local.to = "Enter a date and time";
  if (fromAt && toAt && fromAt >= toAt) local.to = "Must be after the start";
  return {
    from,
    to,
    setFrom,
    setTo,
    local,
    input: { ...(fromAt ? { from: fromAt } : {}), ...(toAt ? { to: toAt } : {}) },
  };
}

function RangeFields(props: {
  range: ReturnType<typeof useRange>;
  issues: Record<string, string>;
  tz: string;
}) {
  const { range } = props;
  return (
    <>
      <Field
        label="From (inclusive)"
        name="from"
        type="datetime-local"
        value={range.from}
        onChange={range.setFrom}
        error={range.local.from ?? props.issues.from}
        description={`Clinic time, ${props.tz}`}
      />
      <Field
        label="To (exclusive)"
        name="to"
        type="datetime-local"
        value={range.to}
        onChange={range.setTo}
        error={range.local.to ?? props.issues.to}
        description={`Clinic time, ${props.tz}`}
      />
    </>
  );
}

/**
 * Screen 7a: search the clinic's audit trail (`audit.search`) by actor, action, outcome, patient
 * and a `[from, to)` range in the clinic's zone, newest first, 50 a page through the API's cursors.
 * Rows carry ids and codes only (the trail holds no PHI).
 */
function AuditSearch(props: { tz: string }) {
  const { tz } = props;
  const users = useQuery({
    queryKey: ["users"],
    // The workforce only (a clinic's portal patients are accounts too); beyond 100, "other" id.
    queryFn: () =>
      haven.auth.users.list.query({ limit: 100, roles: ["clinician", "staff", "admin"] }),
    staleTime: 5 * 60_000,
  });
  const [actor, setActor] = useState("");
  const [otherActor, setOtherActor] = useState("");
  const [action, setAction] = useState<Action | "">("");
  const [outcome, setOutcome] = useState<Outcome | "">("");
  const [patient, setPatient] = useState<Found | null>(null);
  const range = useRange(tz);
  const pager = useCursorPager();
  type Filters = Omit<RouterInputs["audit"]["search"], "cursor" | "limit">;
  const [filters, setFilters] = useState<Filters | null>(null);
  const results = useQuery({
    queryKey: ["auditSearch", filters, pager.cursor],
    enabled: filters !== null,
    queryFn: () =>
      haven.audit.search.query({
        ...filters,
        limit: PAGE,
        ...(pager.cursor ? { cursor: pager.cursor } : {}),
      }),
  });
  const issues = fieldIssues(results.error);
  const actorId = actor === "other" ? otherActor.trim() : actor;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (Object.keys(range.local).length > 0) return;
    pager.reset();
    setFilters({
      ...(actorId ? { actorUserId: actorId } : {}),
      ...(action ? { action } : {}),
      ...(outcome ? { outcome } : {}),
      ...(patient ? { patientId: patient.id } : {}),
      ...range.input,
    });
  };
  const people = users.data?.items ?? [];
  const byId = new Map(people.map((u) => [u.id, u]));
  return (
    <section aria-labelledby="audit-search-h">
      <h2 id="audit-search-h">Search the audit trail</h2>
      <PatientPicker
        idPrefix="audit-filter"
        legend="Patient"
        value={patient}
        onChange={setPatient}
        optional
      />
      <form onSubmit={submit} aria-label="Audit filters" noValidate className="filters">
        <div className="filter-grid">
          <SelectField
            label="Actor"
            value={actor}
            onChange={setActor}
            options={[
              { value: "", label: "Anyone" },
              ...people.map((u) => ({ value: u.id, label: `${u.email} (${u.role})` })),
              { value: "other", label: "Another account (enter its id)…" },
            ]}
          />
          {actor === "other" && (
            <Field
              label="Actor user id"
              name="actorUserId"
              value={otherActor}
              onChange={setOtherActor}
              error={issues.actorUserId}
            />
          )}
          <SelectField<Action | "">
            label="Action"
            value={action}
            onChange={setAction}
            options={[
              { value: "", label: "Any action" },
              ...ACTIONS.map((a) => ({ value: a, label: a })),
            ]}
          />
          <SelectField<Outcome | "">
            label="Outcome"
            value={outcome}
            onChange={setOutcome}
            options={OUTCOMES}
          />
          <RangeFields range={range} issues={issues} tz={tz} />
        </div>
        {users.isError && (
          <ErrorNote>Accounts could not be listed: {messageOf(users.error)}</ErrorNote>
        )}
        <Button type="submit" variant="primary" isDisabled={results.isFetching}>
          {results.isFetching ? "Searching…" : "Search"}
        </Button>
      </form>
      {filters === null && <p className="hint">Choose filters (or none) and press Search.</p>}
      {results.isPending && filters !== null && <Loading what="audit events" />}
      {results.isError && Object.keys(issues).length === 0 && (
        <ErrorNote>{messageOf(results.error)}</ErrorNote>
      )}
      {results.isSuccess && results.data.items.length === 0 && (
        <Empty>No audit events match these filters.</Empty>
      )}
      {results.isSuccess && results.data.items.length > 0 && (
        <TableWrap label="Audit events (scrollable)">
          <table data-testid="audit-results">
            <caption>
              Audit events, newest first (times in {zoneLabel(tz)}), page {pager.page}
            </caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Actor</th>
                <th scope="col">Action</th>
                <th scope="col">Outcome</th>
                <th scope="col">Patient</th>
                <th scope="col">Resource</th>
                <th scope="col">Request</th>
              </tr>
            </thead>
            <tbody>
              {results.data.items.map((e: AuditEvent) => (
                <tr key={e.id} data-event-id={e.id}>
                  <td>{formatStamp(e.occurredAt, tz)}</td>
                  <td>
                    {e.actorUserId ? (
                      <span title={e.actorUserId}>
                        {byId.get(e.actorUserId)?.email ?? shortId(e.actorUserId)}
                      </span>
                    ) : (
                      "system"
                    )}
                    {e.actorRole && <span className="muted"> ({e.actorRole})</span>}
                  </td>
                  <td>
                    <code>{e.action}</code>
                    {e.reason && <span className="muted"> — {e.reason}</span>}
                  </td>
                  <td>
                    <span className={`outcome outcome-${e.outcome}`}>{e.outcome}</span>
                  </td>
                  <td>
                    {e.patientId ? (
                      <Link to={`/patients/${e.patientId}`} title={e.patientId}>
                        {shortId(e.patientId)}
                        <span className="sr-only"> (open chart)</span>
                      </Link>
                    ) : (
                      "—"
                    )}
                  </td>
                  <td>
                    {e.resourceType ?? "—"}
                    {e.resourceId && <span title={e.resourceId}> {shortId(e.resourceId)}</span>}
                  </td>
                  <td>
                    {e.requestId ? <span title={e.requestId}>{shortId(e.requestId)}</span> : "—"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
      <Pager
        pager={pager}
        nextCursor={results.data?.nextCursor}
        label="Audit events"
        busy={results.isFetching}
      />
    </section>
  );
}

const BASIS: Record<string, string> = {
  self: "the patient",
  care_relationship: "care relationship",
  organization: "clinic workforce",
  break_glass: "emergency access",
};

/**
 * Screen 7b: the accounting of disclosures for one patient (`audit.forPatient`, 45 CFR 164.528):
 * who accessed the record, when, what, the outcome and why, newest first, in cursor pages.
 */
function Disclosures(props: { tz: string }) {
  const { tz } = props;
  const [patient, setPatient] = useState<Found | null>(null);
  const range = useRange(tz);
  const pager = useCursorPager();
  const [applied, setApplied] = useState<{ from?: Date; to?: Date }>({});
  const list = useQuery({
    queryKey: ["disclosures", patient?.id, applied, pager.cursor],
    enabled: patient !== null,
    queryFn: () =>
      haven.audit.forPatient.query({
        patientId: patient?.id ?? "",
        ...applied,
        limit: PAGE,
        ...(pager.cursor ? { cursor: pager.cursor } : {}),
      }),
  });
  const issues = fieldIssues(list.error);
  return (
    <section aria-labelledby="disclosures-h">
      <h2 id="disclosures-h">Accounting of disclosures</h2>
      <p className="hint">
        Everyone who accessed one patient's record: when, what, the outcome and on what basis.
      </p>
      <PatientPicker
        idPrefix="disclosures"
        legend="Patient"
        value={patient}
        onChange={(p) => {
          setPatient(p);
          pager.reset();
        }}
      />
      {patient && (
        <form
          aria-label="Disclosure period"
          className="filters"
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            if (Object.keys(range.local).length > 0) return;
            pager.reset();
            setApplied(range.input);
          }}
        >
          <div className="filter-grid">
            <RangeFields range={range} issues={issues} tz={tz} />
          </div>
          <Button type="submit">Apply period</Button>
        </form>
      )}
      {list.isPending && patient && <Loading what="disclosures" />}
      {list.isError && Object.keys(issues).length === 0 && (
        <ErrorNote>{messageOf(list.error)}</ErrorNote>
      )}
      {list.isSuccess && list.data.items.length === 0 && (
        <Empty>No access to this record is recorded in that period.</Empty>
      )}
      {list.isSuccess && list.data.items.length > 0 && (
        <TableWrap label="Disclosures (scrollable)">
          <table data-testid="disclosures">
            <caption>
              Accesses to the record of {patient?.name.family}, newest first (times in{" "}
              {zoneLabel(tz)}), page {pager.page}
            </caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">Action</th>
                <th scope="col">Outcome</th>
                <th scope="col">Basis</th>
                <th scope="col">Request</th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((d: Disclosure) => (
                <tr key={d.id} data-event-id={d.id}>
                  <td>{formatStamp(d.occurredAt, tz)}</td>
                  <td>
                    {d.actor.practitionerName ??
                      (d.actor.userId ? shortId(d.actor.userId) : "system")}
                    {d.actor.role && <span className="muted"> ({d.actor.role})</span>}
                  </td>
                  <td>
                    <code>{d.action}</code>
                    {d.resourceType && <span className="muted"> {d.resourceType}</span>}
                  </td>
                  <td>
                    <span className={`outcome outcome-${d.outcome}`}>{d.outcome}</span>
                  </td>
                  <td>
                    {d.basis ? (BASIS[d.basis] ?? d.basis) : "—"}
                    {d.breakGlass && (
                      <span className="muted">
                        {" "}
                        — reason: {d.breakGlass.reason ?? "not recorded"}
                      </span>
                    )}
                  </td>
                  <td>
                    {d.requestId ? <span title={d.requestId}>{shortId(d.requestId)}</span> : "—"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
      <Pager
        pager={pager}
        nextCursor={list.data?.nextCursor}
        label="Disclosures"
        busy={list.isFetching}
      />
    </section>
  );
}

const PROBLEM: Record<string, string> = {
  event_modified: "an event was changed after it was sealed",
  event_missing: "a sealed event was deleted",
  link_missing: "a link of the chain is missing",
  link_altered: "a link of the chain was altered",
  anchor_mismatch: "the recorded anchor is not in the chain",
};

/**
 * Screen 7c: verify the hash chain (`audit.verify`, 45 CFR 164.312(c)(1)). It seals pending events
 * first, then recomputes every link: "intact" with the links checked and the head, or the first
 * broken link and every problem found. An optional anchor (a head recorded earlier) must still
 * be in the chain.
 */
function Verify() {
  const [anchorSeq, setAnchorSeq] = useState("");
  const [anchorHash, setAnchorHash] = useState("");
  const verify = useMutation({
    mutationFn: () =>
      haven.audit.verify.mutate(
        anchorSeq || anchorHash
          ? { anchor: { seq: Number(anchorSeq), hash: anchorHash.trim().toLowerCase() } }
          : {},
      ),
  });
  const issues = fieldIssues(verify.error);
  const r: Report | undefined = verify.data;
  return (
    <section aria-labelledby="verify-h">
      <h2 id="verify-h">Verify the audit chain</h2>
      <p className="hint">
        Every audit event is sealed into a hash chain. Verification recomputes every link and
        reports the first one that does not match (a changed or deleted event or link).
      </p>
      <form
        aria-label="Verify the audit chain"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          verify.mutate();
        }}
      >
        <details>
          <summary>Check against a recorded head (optional)</summary>
          <div className="filter-grid">
            <Field
              label="Anchor sequence number"
              name="anchor.seq"
              inputMode="numeric"
              value={anchorSeq}
              onChange={setAnchorSeq}
              error={issues["anchor.seq"]}
            />
            <Field
              label="Anchor hash (64 hex characters)"
              name="anchor.hash"
              value={anchorHash}
              onChange={setAnchorHash}
              error={issues["anchor.hash"]}
            />
          </div>
        </details>
        <Button type="submit" variant="primary" isDisabled={verify.isPending}>
          {verify.isPending ? "Verifying…" : "Verify the chain"}
        </Button>
      </form>
      {verify.isPending && <Loading what="the verification" />}
      {verify.isError && Object.keys(issues).length === 0 && (
        <ErrorNote>{messageOf(verify.error)}</ErrorNote>
      )}
      {r && (
        <div
          className={`note verify-result ${r.ok ? "note-ok" : "note-error"}`}
          role="status"
          data-testid="verify-result"
        >
          <h3>{r.ok ? "The audit chain is intact" : "The audit chain is broken"}</h3>
          <dl className="facts">
            <dt>Links checked</dt>
            <dd data-testid="verify-links">{r.links}</dd>
            <dt>Head</dt>
            <dd>
              {r.head ? (
                <>
                  #<span data-testid="verify-head-seq">{r.head.seq}</span>{" "}
                  <code className="hash" data-testid="verify-head-hash">
                    {r.head.hash}
                  </code>
                </>
              ) : (
                "empty chain"
              )}
            </dd>
            <dt>Sealed just now</dt>
            <dd>{r.sealed}</dd>
            <dt>Not yet sealed</dt>
            <dd>{r.unsealed}</dd>
            {r.firstBroken && (
              <>
                <dt>First broken link</dt>
                <dd data-testid="verify-first-broken">
                  #{r.firstBroken.seq}: {PROBLEM[r.firstBroken.kind] ?? r.firstBroken.kind}
                  {r.firstBroken.eventId && (
                    <>
                      {" "}
                      (event <code>{r.firstBroken.eventId}</code>)
                    </>
                  )}
                </dd>
              </>
            )}
          </dl>
          {r.problems.length > 0 && (
            <TableWrap label="Problems found (scrollable)">
              <table>
                <caption>
                  Problems found ({r.problemCount}
                  {r.problemCount > r.problems.length ? `, first ${r.problems.length} shown` : ""})
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Link</th>
                    <th scope="col">Problem</th>
                    <th scope="col">Event</th>
                  </tr>
                </thead>
                <tbody>
                  {r.problems.map((p) => (
                    <tr key={`${p.seq}-${p.kind}`}>
                      <td>#{p.seq}</td>
                      <td>{PROBLEM[p.kind] ?? p.kind}</td>
                      <td>{p.eventId ? <code>{p.eventId}</code> : "—"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
          )}
          {r.head && (
            <p className="hint">
              Keep the head (#{r.head.seq} and its hash) somewhere else: a later verification
              against it proves nothing before it was truncated or rewritten.
            </p>
          )}
        </div>
      )}
    </section>
  );
}

const GRANT_STATE: Record<Grant["state"], string> = {
  active: "Active",
  expired: "Expired",
  revoked: "Revoked",
};

/** One emergency grant with its review form (pending) or the recorded review. */
function GrantCard(props: { grant: Grant; tz: string }) {
  const { grant: g, tz } = props;
  const qc = useQueryClient();
  const [outcome, setOutcome] = useState<"appropriate" | "inappropriate" | "">("");
  const [note, setNote, clearNote, noteRestored] = useDraft(
    `bg-review.${g.grantId}`,
    "",
    `Review note for the emergency access granted ${formatStamp(g.grantedAt, tz)}`,
  );
  const ack = useMutation({
    mutationFn: () =>
      haven.audit.breakGlassAcknowledge.mutate({
        grantId: g.grantId,
        outcome: outcome || "appropriate",
        ...(note.trim() ? { note } : {}),
      }),
    onSuccess: () => {
      clearNote();
      void qc.invalidateQueries({ queryKey: ["breakGlassReview"] });
    },
    onError: (err) => {
      if (isConflict(err)) void qc.invalidateQueries({ queryKey: ["breakGlassReview"] });
    },
  });
  const issues = fieldIssues(ack.error);
  const headingId = `grant-${g.grantId}`;
  return (
    <li className="grant" aria-labelledby={headingId}>
      <h3 id={headingId}>
        {g.clinician.practitionerName ?? shortId(g.clinician.userId)}, granted{" "}
        {formatStamp(g.grantedAt, tz)}
      </h3>
      <dl className="facts">
        <dt>Patient</dt>
        <dd>
          <Link to={`/patients/${g.patientId}`}>
            {shortId(g.patientId)}
            <span className="sr-only"> (open chart)</span>
          </Link>
        </dd>
        <dt>Reason given</dt>
        <dd className="reason">{g.reason}</dd>
        <dt>State</dt>
        <dd>
          {GRANT_STATE[g.state]}
          {g.state === "active"
            ? ` until ${formatStamp(g.expiresAt, tz)}`
            : g.revokedAt
              ? ` at ${formatStamp(g.revokedAt, tz)}`
              : ` at ${formatStamp(g.expiresAt, tz)}`}
        </dd>
        <dt>Reads under this grant</dt>
        <dd>{g.accessCount}</dd>
        {g.review && (
          <>
            <dt>Review</dt>
            <dd>
              {g.review.outcome === "appropriate" ? "Appropriate" : "Inappropriate"}, on{" "}
              {formatStamp(g.review.reviewedAt, tz)}
              {g.review.note && <> — {g.review.note}</>}
            </dd>
          </>
        )}
      </dl>
      {!g.review && (
        <form
          aria-label={`Review of the emergency access granted ${formatStamp(g.grantedAt, tz)}`}
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            if (outcome) ack.mutate();
          }}
        >
          <fieldset className="row">
            <legend>Was this emergency access appropriate?</legend>
            <label>
              <input
                type="radio"
                name={`outcome-${g.grantId}`}
                checked={outcome === "appropriate"}
                onChange={() => setOutcome("appropriate")}
              />{" "}
              Appropriate
            </label>
            <label>
              <input
                type="radio"
                name={`outcome-${g.grantId}`}
                checked={outcome === "inappropriate"}
                onChange={() => setOutcome("inappropriate")}
              />{" "}
              Inappropriate
            </label>
          </fieldset>
          <Field
            label="Review note (optional)"
            name="note"
            value={note}
            onChange={setNote}
            error={issues.note}
            {...(noteRestored && note
              ? { description: "Restored: the text you typed before you were signed out." }
              : {})}
          />
          {ack.isError && Object.keys(issues).length === 0 && (
            <ErrorNote>
              {isConflict(ack.error)
                ? "Another admin reviewed this grant a moment ago. The queue has been refreshed."
                : messageOf(ack.error)}
            </ErrorNote>
          )}
          <Button type="submit" variant="primary" isDisabled={!outcome || ack.isPending}>
            {ack.isPending ? "Saving…" : "Record the review"}
          </Button>
        </form>
      )}
    </li>
  );
}

/**
 * Screen 7d: the break-the-glass review queue (`audit.breakGlassReview`, 164.308(a)(1)(ii)(D)):
 * emergency grants with the clinician, the stated reason, state and reads made under each;
 * pending ones get an appropriate/inappropriate acknowledgement (`audit.breakGlassAcknowledge`).
 */
function BreakGlassQueue(props: { tz: string }) {
  const [status, setStatus] = useState<"pending" | "reviewed" | "all">("pending");
  const pager = useCursorPager();
  const queue = useQuery({
    queryKey: ["breakGlassReview", status, pager.cursor],
    queryFn: () =>
      haven.audit.breakGlassReview.query({
        status,
        limit: 20,
        ...(pager.cursor ? { cursor: pager.cursor } : {}),
      }),
  });
  return (
    <section aria-labelledby="bg-h">
      <h2 id="bg-h">Break-the-glass review</h2>
      <div className="filter-grid">
        <SelectField
          label="Show"
          value={status}
          onChange={(v) => {
            setStatus(v);
            pager.reset();
          }}
          options={[
            { value: "pending", label: "Waiting for review" },
            { value: "reviewed", label: "Reviewed" },
            { value: "all", label: "All" },
          ]}
        />
      </div>
      {queue.isPending && <Loading what="emergency grants" />}
      {queue.isError && <ErrorNote>{messageOf(queue.error)}</ErrorNote>}
      {queue.isSuccess && queue.data.items.length === 0 && (
        <Empty>
          {status === "pending"
            ? "No emergency access is waiting for review."
            : "No emergency access to show."}
        </Empty>
      )}
      {queue.isSuccess && queue.data.items.length > 0 && (
        <ul className="grants" aria-label="Emergency grants">
          {queue.data.items.map((g) => (
            <GrantCard key={g.grantId} grant={g} tz={props.tz} />
          ))}
        </ul>
      )}
      <Pager
        pager={pager}
        nextCursor={queue.data?.nextCursor}
        label="Emergency grants"
        busy={queue.isFetching}
      />
    </section>
  );
}

/**
 * Screen 7: the audit trail, for admins (the server allows `audit.*` to admins only): search,
 * the accounting of disclosures for a patient, chain verification and the break-the-glass review
 * queue, as tabs (arrow keys move between them; the tab is kept in `?tab=`).
 */
export default function Audit() {
  const tz = useClinicZone();
  const [params, setParams] = useSearchParams();
  const raw = params.get("tab");
  const tab: TabKey = (TABS as readonly string[]).includes(raw ?? "") ? (raw as TabKey) : "search";
  return (
    <section aria-labelledby="audit-h">
      <h1 id="audit-h">Audit</h1>
      <Tabs
        selectedKey={tab}
        onSelectionChange={(k) => {
          const next = new URLSearchParams(params);
          next.set("tab", String(k));
          setParams(next, { replace: true });
        }}
      >
        <TabList aria-label="Audit views" className="tabs">
          <Tab id="search">Search</Tab>
          <Tab id="patient">Disclosures for a patient</Tab>
          <Tab id="verify">Chain verification</Tab>
          <Tab id="break-glass">Break-the-glass review</Tab>
        </TabList>
        <TabPanel id="search">
          <AuditSearch tz={tz} />
        </TabPanel>
        <TabPanel id="patient">
          <Disclosures tz={tz} />
        </TabPanel>
        <TabPanel id="verify">
          <Verify />
        </TabPanel>
        <TabPanel id="break-glass">
          <BreakGlassQueue tz={tz} />
        </TabPanel>
      </Tabs>
    </section>
  );
}
