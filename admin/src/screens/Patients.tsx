import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { haven, isForbidden, messageOf } from "../api.ts";
import { PatientSearch } from "../PatientSearch.tsx";
import { useSession } from "../session.tsx";
import { Button, Empty, ErrorNote, Loading } from "../ui.tsx";
import {
  BreakGlassForm,
  EmergencyBanner,
  EmergencyEnded,
  type EndedHow,
  useMyGrants,
} from "./BreakGlass.tsx";

/** Screen 4a: find a patient by MRN or family name + birth date, then open the chart. */
export function PatientFind() {
  const navigate = useNavigate();
  return (
    <section aria-labelledby="patients-h">
      <h1 id="patients-h">Patients</h1>
      <PatientSearch
        idPrefix="find"
        pickLabel="Open chart"
        onPick={(p) => navigate(`/patients/${p.id}`)}
      />
    </section>
  );
}

/**
 * Screen 4b: the chart through the caller's role whitelist — demographics, clinical entries and
 * appointments (cursor pages). A clinician without a care relationship gets a refusal page that
 * says why and that the attempt was recorded (the server audits it as `denied`), not an empty chart,
 * and may break the glass there (screen 5): the chart then opens under the emergency grant with
 * the {@link EmergencyBanner} counting down; when the grant expires or is ended, the chart closes
 * and the server is asked again (it refuses once the grant is over).
 */
export function PatientChart() {
  const { patientId = "" } = useParams();
  const { me } = useSession();
  const qc = useQueryClient();
  const clinician = me.user.role === "clinician";
  const chart = useQuery({
    queryKey: ["chart", patientId],
    queryFn: () => haven.patients.get.query({ patientId }),
  });
  const underGrant = chart.data?.access === "break_glass";
  const grants = useMyGrants(clinician && underGrant);
  const grant = grants.data?.find((g) => g.patientId === patientId) ?? null;
  const [endedFor, setEnded] = useState<{
    patientId: string;
    how: EndedHow;
    at: Date;
  } | null>(null);
  // An ended grant belongs to the chart it was shown on, not to the next patient opened.
  const ended = endedFor?.patientId === patientId ? endedFor : null;
  const onEnded = useCallback(
    (how: EndedHow, at: Date) => {
      setEnded((e) => (e?.patientId === patientId ? e : { patientId, how, at }));
      // Ask the server again a moment after the end (its clock decides): it refuses from now on.
      window.setTimeout(() => {
        void qc.invalidateQueries({ queryKey: ["myGrants"] });
        void qc.invalidateQueries({ queryKey: ["chart", patientId] });
      }, 1000);
    },
    [qc, patientId],
  );
  const [cursor, setCursor] = useState<string | undefined>(undefined);
  const [pages, setPages] = useState<string[]>([]);
  const appts = useQuery({
    queryKey: ["patientAppointments", patientId, cursor],
    enabled: chart.isSuccess,
    queryFn: () =>
      haven.appointments.listForPatient.query({
        patientId,
        limit: 20,
        ...(cursor ? { cursor } : {}),
      }),
  });
  // The server no longer lists the grant the chart was opened under (ended elsewhere): closed too.
  const lost = underGrant && grants.isSuccess && !grants.isFetching && grant === null;
  const hasEnded = ended !== null;
  useEffect(() => {
    if (lost && !hasEnded) onEnded("ended", new Date());
  }, [lost, hasEnded, onEnded]);
  if (chart.isPending) return <Loading what="the chart" />;
  const closed = (ended !== null || lost) && chart.isSuccess && underGrant;
  if ((chart.isError && isForbidden(chart.error)) || closed)
    return (
      <section aria-labelledby="refused-h" className="refusal">
        {ended && <EmergencyEnded how={ended.how} at={ended.at} />}
        <h1 id="refused-h">You do not have access to this patient's chart</h1>
        <p>
          Only clinicians with a current care relationship with this patient may open the chart.
          This attempt has been recorded in the audit log.
        </p>
        <p>
          In an emergency you can request break-the-glass access, which needs a reason and a fresh
          authenticator code and is reviewed afterwards.
        </p>
        {clinician && !closed && (
          <BreakGlassForm
            patientId={patientId}
            onGranted={() => {
              setEnded(null);
              void qc.invalidateQueries({ queryKey: ["chart", patientId] });
            }}
          />
        )}
        <p>
          <Link to="/patients">Back to patient search</Link>
        </p>
      </section>
    );
  if (chart.isError) return <ErrorNote>{messageOf(chart.error)}</ErrorNote>;
  const p = chart.data;
  const d = p.demographics;
  return (
    <section aria-labelledby="chart-h">
      {underGrant &&
        (grant ? (
          <EmergencyBanner grant={grant} onEnded={onEnded} />
        ) : grants.isError ? (
          <ErrorNote>{messageOf(grants.error)}</ErrorNote>
        ) : (
          <Loading what="the emergency access" />
        ))}
      <h1 id="chart-h">
        {d.name.family}, {d.name.given.join(" ")}
      </h1>
      <p className="hint">Access: {p.access.replace("_", " ")}</p>
      <h2>Demographics</h2>
      <dl className="facts">
        <dt>Birth date</dt>
        <dd>{d.birthDate ?? "—"}</dd>
        <dt>Sex</dt>
        <dd>{d.sex}</dd>
        <dt>Phone</dt>
        <dd>{d.phone ?? "—"}</dd>
        <dt>E-mail</dt>
        <dd>{d.email ?? "—"}</dd>
      </dl>
      <h2>Appointments</h2>
      {appts.isPending && <Loading what="appointments" />}
      {appts.isError && <ErrorNote>{messageOf(appts.error)}</ErrorNote>}
      {appts.isSuccess && appts.data.items.length === 0 && <Empty>No appointments.</Empty>}
      {appts.isSuccess && appts.data.items.length > 0 && (
        <table>
          <caption className="sr-only">Appointments</caption>
          <thead>
            <tr>
              <th scope="col">Starts (UTC)</th>
              <th scope="col">Practitioner</th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {appts.data.items.map((a) => (
              <tr key={a.id}>
                <td>{a.startsAt.toISOString().slice(0, 16).replace("T", " ")}</td>
                <td>{a.practitioner.name}</td>
                <td>{a.status.replace("_", " ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div className="row">
        {pages.length > 0 && (
          <Button
            onPress={() => {
              const prev = pages.slice(0, -1);
              setPages(prev);
              setCursor(prev.at(-1));
            }}
          >
            Previous page
          </Button>
        )}
        {appts.data?.nextCursor && (
          <Button
            onPress={() => {
              const next = appts.data?.nextCursor ?? undefined;
              if (next) {
                setPages([...pages, next]);
                setCursor(next);
              }
            }}
          >
            Next page
          </Button>
        )}
      </div>
      <h2>Clinical entries ({p.entries.length})</h2>
      {p.entries.length === 0 ? (
        <Empty>No entries visible to your role.</Empty>
      ) : (
        <table>
          <caption className="sr-only">Clinical entries</caption>
          <thead>
            <tr>
              <th scope="col">Recorded</th>
              <th scope="col">Kind</th>
              <th scope="col">Source</th>
            </tr>
          </thead>
          <tbody>
            {p.entries.slice(0, 100).map((e) => (
              <tr key={e.id}>
                <td>{e.recordedAt.toISOString().slice(0, 10)}</td>
                <td>{e.kind}</td>
                <td>{e.source}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
