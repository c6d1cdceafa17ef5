import type { RouterOutputs } from "@haven/client";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import { useSearchParams } from "react-router";
import { haven, messageOf } from "../api.ts";
import { useSession } from "../session.tsx";
import {
  addDays,
  formatDay,
  formatTime,
  localDate,
  localHour,
  startOfLocalDay,
  startOfWeek,
  zoneLabel,
} from "../time.ts";
import { Button, Empty, ErrorNote, Loading } from "../ui.tsx";
import { AppointmentDialog, BookDialog } from "./Appointment.tsx";

type Item = RouterOutputs["appointments"]["day"]["items"][number];
type Slot = RouterOutputs["appointments"]["slots"]["slots"][number];
type View = "day" | "week";

const STATUS: Record<Item["status"], string> = {
  booked: "Booked",
  checked_in: "Checked in",
  completed: "Completed",
  cancelled: "Cancelled",
  no_show: "No-show",
};

/** `Smith, Anna` or, for roles without demographics, a neutral label. */
export function patientLabel(item: Pick<Item, "patientName">): string {
  const n = item.patientName;
  return n ? `${n.family}, ${n.given.join(" ")}`.replace(/, $/, "") : "Patient";
}

/**
 * Screen 2: the schedule. A day or week grid (rows = local hours, columns = practitioners or days)
 * in the clinic's IANA zone, named in the caption; whole clinic or one practitioner. Every page of
 * `appointments.day` / `forPractitioner` is read through its cursor. `appointments.onChange`
 * (SSE, cookie-authenticated) refreshes it live. With one practitioner selected, free slots from
 * `appointments.slots` are shown and can be booked (screen 3).
 */
export default function Schedule() {
  const { me } = useSession();
  const qc = useQueryClient();
  const frontDesk = me.user.role === "staff" || me.user.role === "admin";
  const [params, setParams] = useSearchParams();
  const clinic = useQuery({
    queryKey: ["practitioners"],
    queryFn: () => haven.appointments.practitioners.query({}),
    staleTime: 5 * 60_000,
  });
  const tz = clinic.data?.timeZone ?? "UTC";
  const today = localDate(new Date(), tz);
  const view: View = params.get("view") === "week" ? "week" : "day";
  const date = /^\d{4}-\d{2}-\d{2}$/.test(params.get("date") ?? "")
    ? (params.get("date") as string)
    : today;
  const practitionerId = frontDesk
    ? (params.get("practitioner") ?? "")
    : (me.user.practitionerId ?? "");
  const set = (patch: Record<string, string>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(patch)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    setParams(next, { replace: true });
  };

  const days = useMemo(() => {
    const first = view === "day" ? date : startOfWeek(date);
    return Array.from({ length: view === "day" ? 1 : 7 }, (_, i) => addDays(first, i));
  }, [view, date]);
  const from = startOfLocalDay(days[0] ?? date, tz);
  const to = startOfLocalDay(addDays(days.at(-1) ?? date, 1), tz);

  const key = ["schedule", view, date, practitionerId, tz] as const;
  const schedule = useQuery({
    queryKey: key,
    enabled: clinic.isSuccess,
    queryFn: async () => {
      const items: Item[] = [];
      if (frontDesk && clinic.data) {
        for (const d of days) {
          let cursor: string | undefined;
          do {
            const page = await haven.appointments.day.query({
              organizationId: clinic.data.organizationId,
              date: d,
              ...(practitionerId ? { practitionerId } : {}),
              limit: 200,
              ...(cursor ? { cursor } : {}),
            });
            items.push(...page.items);
            cursor = page.nextCursor ?? undefined;
          } while (cursor);
        }
      } else {
        let cursor: string | undefined;
        do {
          const page = await haven.appointments.forPractitioner.query({
            from,
            to,
            limit: 200,
            ...(cursor ? { cursor } : {}),
          });
          items.push(...page.items);
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
      }
      return items;
    },
  });
  const slots = useQuery({
    queryKey: ["slots", practitionerId, from.toISOString(), to.toISOString()],
    enabled: frontDesk && Boolean(practitionerId) && clinic.isSuccess,
    queryFn: () => haven.appointments.slots.query({ practitionerId, from, to }),
  });

  // Live updates: every change in scope refreshes the grid and the free slots.
  const [live, setLive] = useState<"connecting" | "live" | "lost">("connecting");
  const [lastChange, setLastChange] = useState("");
  useEffect(() => {
    if (!clinic.data) return;
    const sub = haven.appointments.onChange.subscribe(
      frontDesk
        ? {
            organizationId: clinic.data.organizationId,
            ...(practitionerId ? { practitionerId } : {}),
          }
        : {},
      {
        onStarted: () => setLive("live"),
        onData: (event) => {
          setLive("live");
          const a = event.data.appointment;
          setLastChange(
            `${STATUS[a.status]}: ${patientLabel(a)} at ${formatTime(a.startsAt, clinic.data.timeZone)} with ${a.practitioner.name}`,
          );
          void qc.invalidateQueries({ queryKey: ["schedule"] });
          void qc.invalidateQueries({ queryKey: ["slots"] });
        },
        onError: () => setLive("lost"),
        onConnectionStateChange: (s) => setLive(s.state === "pending" ? "live" : "connecting"),
      },
    );
    return () => sub.unsubscribe();
  }, [clinic.data, frontDesk, practitionerId, qc]);

  // For bench/panel.ts: the moment the grid with its data is on screen and clickable.
  useEffect(() => {
    if (
      schedule.isSuccess &&
      performance.getEntriesByName("haven:schedule-interactive").length === 0
    )
      performance.mark("haven:schedule-interactive");
  }, [schedule.isSuccess]);

  const [open, setOpen] = useState<Item | null>(null);
  const [booking, setBooking] = useState<Slot | null>(null);

  if (clinic.isPending) return <Loading what="the clinic" />;
  if (clinic.isError) return <ErrorNote>{messageOf(clinic.error)}</ErrorNote>;

  const practitioners = clinic.data.items;
  const columns =
    view === "week"
      ? days.map((d) => ({ id: d, label: formatDay(d) }))
      : practitionerId
        ? practitioners
            .filter((p) => p.id === practitionerId)
            .map((p) => ({ id: p.id, label: p.name }))
        : practitioners.map((p) => ({ id: p.id, label: p.name }));
  const items = schedule.data ?? [];
  const colOf = (t: Date, pid: string) => (view === "week" ? localDate(t, tz) : pid);
  const hours = new Set<number>();
  for (let h = 8; h < 18; h++) hours.add(h);
  for (const i of items) hours.add(localHour(i.startsAt, tz));
  for (const s of slots.data?.slots ?? []) hours.add(localHour(s.startsAt, tz));
  const rows = [...hours].sort((a, b) => a - b);
  const practitionerName = practitioners.find((p) => p.id === practitionerId)?.name;
  const title = `${view === "day" ? formatDay(date) : `Week of ${formatDay(days[0] ?? date)}`} — ${
    practitionerName ?? (frontDesk ? "whole clinic" : "my calendar")
  }`;

  return (
    <section aria-labelledby="schedule-h">
      <h1 id="schedule-h">Schedule</h1>
      <p>
        Times are in the clinic's time zone: <strong>{zoneLabel(tz)}</strong>.
      </p>
      <form
        className="row toolbar"
        onSubmit={(e) => e.preventDefault()}
        aria-label="Schedule options"
      >
        {frontDesk && (
          <div className="field">
            <label htmlFor="practitioner">Practitioner</label>
            <select
              id="practitioner"
              value={practitionerId}
              onChange={(e) => set({ practitioner: e.target.value })}
            >
              <option value="">Whole clinic</option>
              {practitioners.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          </div>
        )}
        <div className="field">
          <label htmlFor="view">View</label>
          <select id="view" value={view} onChange={(e) => set({ view: e.target.value })}>
            <option value="day">Day</option>
            <option value="week">Week</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="date">Date</label>
          <input
            id="date"
            type="date"
            value={date}
            onChange={(e) => set({ date: e.target.value })}
          />
        </div>
        <div className="field">
          <Button onPress={() => set({ date: addDays(date, view === "day" ? -1 : -7) })}>
            Previous
          </Button>
        </div>
        <div className="field">
          <Button onPress={() => set({ date: "" })}>Today</Button>
        </div>
        <div className="field">
          <Button onPress={() => set({ date: addDays(date, view === "day" ? 1 : 7) })}>Next</Button>
        </div>
      </form>
      <p className="live" role="status" data-testid="live-status">
        Live updates:{" "}
        {live === "live" ? "on" : live === "lost" ? "interrupted, reconnecting" : "connecting"}
        {lastChange && <span className="sr-only"> — {lastChange}</span>}
      </p>
      {schedule.isError && <ErrorNote>{messageOf(schedule.error)}</ErrorNote>}
      {schedule.isPending && <Loading what="the schedule" />}
      {frontDesk && !practitionerId && (
        <p className="hint">Choose a practitioner to see free slots and book.</p>
      )}
      {schedule.isSuccess && columns.length === 0 && (
        <Empty>This clinic has no practitioners.</Empty>
      )}
      {schedule.isSuccess && columns.length > 0 && (
        <div className="grid-wrap">
          <table
            className={columns.length > 2 ? "calendar calendar-wide" : "calendar"}
            data-testid="calendar"
          >
            <caption>
              {title} ({items.length} appointment{items.length === 1 ? "" : "s"})
            </caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                {columns.map((c) => (
                  <th scope="col" key={c.id}>
                    {c.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((h) => (
                <tr key={h}>
                  <th scope="row">{`${String(h).padStart(2, "0")}:00`}</th>
                  {columns.map((c) => {
                    const here = items.filter(
                      (i) =>
                        localHour(i.startsAt, tz) === h &&
                        colOf(i.startsAt, i.practitioner.id) === c.id,
                    );
                    const free = (slots.data?.slots ?? []).filter(
                      (s) =>
                        localHour(s.startsAt, tz) === h &&
                        colOf(s.startsAt, practitionerId) === c.id,
                    );
                    return (
                      <td key={c.id}>
                        {here.map((i) => (
                          <button
                            type="button"
                            key={i.id}
                            className={`appt st-${i.status}`}
                            onClick={() => setOpen(i)}
                          >
                            {formatTime(i.startsAt, tz)} {patientLabel(i)}
                            <span className="appt-status"> · {STATUS[i.status]}</span>
                            {view === "week" && !practitionerId && (
                              <span className="appt-who"> · {i.practitioner.name}</span>
                            )}
                          </button>
                        ))}
                        {free.map((s) => (
                          <button
                            type="button"
                            key={s.startsAt.toISOString()}
                            className="slot"
                            onClick={() => setBooking(s)}
                          >
                            Free {formatTime(s.startsAt, tz)}
                            <span className="sr-only"> — book this slot</span>
                          </button>
                        ))}
                      </td>
                    );
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {open && (
        <AppointmentDialog
          item={items.find((i) => i.id === open.id) ?? open}
          timeZone={tz}
          frontDesk={frontDesk}
          onClose={() => setOpen(null)}
        />
      )}
      {booking && practitionerId && (
        <BookDialog
          slot={booking}
          practitionerId={practitionerId}
          practitionerName={practitionerName ?? ""}
          timeZone={tz}
          onClose={() => setBooking(null)}
        />
      )}
    </section>
  );
}
