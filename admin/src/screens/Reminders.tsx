import { isHavenError, type RouterInputs, type RouterOutputs } from "@haven/client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router";
import { haven, isConflict, messageOf } from "../api.ts";
import { Pager, SelectField, TableWrap, useClinicZone, useCursorPager } from "../ops-ui.tsx";
import { formatStamp, zoneLabel } from "../time.ts";
import { Button, Empty, ErrorNote, Loading } from "../ui.tsx";

type Status = NonNullable<RouterInputs["reminders"]["list"]["status"]>;
type Reminder = RouterOutputs["reminders"]["list"]["items"][number];

const STATUS_LABEL: Record<Status, string> = {
  pending: "Pending",
  claimed: "Being sent",
  sent: "Sent",
  failed: "Failed (dead letter)",
  cancelled: "Cancelled",
};
const STATUSES = Object.keys(STATUS_LABEL) as Status[];

/** Plain words for the retry refusals (`CONFLICT` reasons of `reminders.retry`). */
const RETRY_REFUSAL: Record<string, string> = {
  not_failed:
    "This reminder is no longer failed (someone retried it, or it was sent). The list has been refreshed.",
  appointment_not_upcoming:
    "The appointment has passed or is no longer booked, so there is nothing to remind the patient of.",
};

function offsetLabel(minutes: number): string {
  if (minutes % 1440 === 0) return `${minutes / 1440} d before`;
  if (minutes % 60 === 0) return `${minutes / 60} h before`;
  return `${minutes} min before`;
}

/**
 * Screen 8: the reminder queue for staff and admins. Counts by status, due depth, expired leases
 * and the oldest due time (`reminders.stats`); the reminders of one status, failed ones (dead
 * letters) first, in cursor pages of 25 (`reminders.list`: ids, times, attempts and error codes,
 * no names or addresses); and Retry on a dead letter (`reminders.retry`), which puts it back in
 * the queue, due now with its attempts reset, and says so (or why it cannot).
 */
export default function Reminders() {
  const tz = useClinicZone();
  const qc = useQueryClient();
  const stats = useQuery({
    queryKey: ["reminderStats"],
    queryFn: () => haven.reminders.stats.query(),
  });
  const [status, setStatus] = useState<Status>("failed");
  const pager = useCursorPager();
  const list = useQuery({
    queryKey: ["reminders", status, pager.cursor],
    queryFn: () =>
      haven.reminders.list.query({
        status,
        limit: 25,
        ...(pager.cursor ? { cursor: pager.cursor } : {}),
      }),
  });
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ["reminderStats"] });
    void qc.invalidateQueries({ queryKey: ["reminders"] });
  };
  const retry = useMutation({
    mutationFn: (r: Reminder) => haven.reminders.retry.mutate({ id: r.id }),
    onSuccess: (r) => {
      setResult({
        ok: true,
        text: `Reminder ${r.id.slice(0, 8)}… is back in the queue: ${STATUS_LABEL[r.status].toLowerCase()}, next attempt ${formatStamp(r.nextAttemptAt, tz)}, attempts reset to ${r.attempts}.`,
      });
      refresh();
    },
    onError: (err) => {
      const reason = isHavenError(err) ? err.data.reason : undefined;
      setResult({ ok: false, text: (reason && RETRY_REFUSAL[reason]) || messageOf(err) });
      if (isConflict(err)) refresh();
    },
  });

  const s = stats.data;
  return (
    <section aria-labelledby="reminders-h">
      <h1 id="reminders-h">Reminders</h1>
      <section aria-labelledby="queue-h">
        <h2 id="queue-h">Queue</h2>
        {stats.isPending && <Loading what="queue statistics" />}
        {stats.isError && <ErrorNote>{messageOf(stats.error)}</ErrorNote>}
        {s && (
          <>
            <dl className="stats" data-testid="reminder-stats">
              {STATUSES.map((k) => (
                <div key={k} className={`stat stat-${k}`}>
                  <dt>{STATUS_LABEL[k]}</dt>
                  <dd data-testid={`stat-${k}`}>{s.byStatus[k]}</dd>
                </div>
              ))}
              <div className="stat">
                <dt>Due now</dt>
                <dd data-testid="stat-due">{s.due}</dd>
              </div>
              <div className="stat">
                <dt>Expired claims</dt>
                <dd data-testid="stat-expired">{s.expiredLeases}</dd>
              </div>
            </dl>
            <p className="hint">
              {s.oldestDueAt
                ? `Oldest due reminder waiting since ${formatStamp(s.oldestDueAt, tz)} (${zoneLabel(tz)}).`
                : "Nothing is waiting to be sent."}{" "}
              {s.expiredLeases > 0 &&
                "Expired claims mean a sender stopped mid-way; the next run picks them up."}
            </p>
            <Button onPress={refresh} isDisabled={stats.isFetching || list.isFetching}>
              Refresh
            </Button>
          </>
        )}
      </section>

      <section aria-labelledby="list-h">
        <h2 id="list-h">
          {status === "failed" ? "Dead letters" : `${STATUS_LABEL[status]} reminders`}
        </h2>
        <div className="filter-grid">
          <SelectField
            label="Status"
            value={status}
            onChange={(v) => {
              setStatus(v);
              pager.reset();
              setResult(null);
            }}
            options={STATUSES.map((k) => ({ value: k, label: STATUS_LABEL[k] }))}
          />
        </div>
        {result && (
          <p
            className={`note ${result.ok ? "note-ok" : "note-error"}`}
            role={result.ok ? "status" : "alert"}
            data-testid="retry-result"
          >
            {result.text}
          </p>
        )}
        {list.isPending && <Loading what="reminders" />}
        {list.isError && <ErrorNote>{messageOf(list.error)}</ErrorNote>}
        {list.isSuccess && list.data.items.length === 0 && (
          <Empty>
            {status === "failed"
              ? "No dead letters: every reminder was sent or is still queued."
              : "No reminders with this status."}
          </Empty>
        )}
        {list.isSuccess && list.data.items.length > 0 && (
          <TableWrap label="Reminders (scrollable)">
            <table data-testid="reminder-list">
              <caption>
                {STATUS_LABEL[status]} reminders, latest due first (times in {zoneLabel(tz)}), page{" "}
                {pager.page}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Due</th>
                  <th scope="col">Channel</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Last error</th>
                  <th scope="col">Next attempt / sent</th>
                  <th scope="col">Patient</th>
                  <th scope="col">
                    <span className="sr-only">Action</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((r) => (
                  <tr key={r.id} data-reminder-id={r.id}>
                    <td>
                      {formatStamp(r.dueAt, tz)}
                      <span className="muted"> ({offsetLabel(r.offsetMinutes)})</span>
                    </td>
                    <td>{r.channel === "sms" ? "SMS" : "E-mail"}</td>
                    <td>{r.attempts}</td>
                    <td>{r.lastError ? <code>{r.lastError}</code> : "—"}</td>
                    <td>
                      {r.sentAt
                        ? `sent ${formatStamp(r.sentAt, tz)}`
                        : formatStamp(r.nextAttemptAt, tz)}
                    </td>
                    <td>
                      <Link to={`/patients/${r.patientId}`}>
                        Chart
                        <span className="sr-only">
                          {" "}
                          of the patient of reminder {r.id.slice(0, 8)}
                        </span>
                      </Link>
                    </td>
                    <td>
                      {r.status === "failed" && (
                        <Button onPress={() => retry.mutate(r)} isDisabled={retry.isPending}>
                          Retry
                          <span className="sr-only"> reminder due {formatStamp(r.dueAt, tz)}</span>
                        </Button>
                      )}
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
          label="Reminders"
          busy={list.isFetching}
        />
      </section>
    </section>
  );
}
