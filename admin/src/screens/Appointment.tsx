import type { RouterOutputs } from "@haven/client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type ReactNode, useState } from "react";
import { Dialog, Heading, Modal, ModalOverlay } from "react-aria-components";
import { fieldIssues, haven, isConflict, messageOf } from "../api.ts";
import { type Found, PatientSearch } from "../PatientSearch.tsx";
import { useDraft } from "../session.tsx";
import { addDays, formatDay, formatTime, localDate, startOfLocalDay } from "../time.ts";
import { Button, ErrorNote, Field, Loading } from "../ui.tsx";

type Item = RouterOutputs["appointments"]["day"]["items"][number];
type Slot = RouterOutputs["appointments"]["slots"]["slots"][number];

/** A modal dialog (React Aria: focus trapped and restored, Escape closes, labelled by its title). */
function Modalish(props: { title: string; onClose(): void; children: ReactNode }) {
  return (
    <ModalOverlay
      className="dialog-backdrop"
      isOpen
      isDismissable
      onOpenChange={(o) => !o && props.onClose()}
    >
      <Modal>
        <Dialog className="dialog">
          <Heading slot="title">{props.title}</Heading>
          {props.children}
        </Dialog>
      </Modal>
    </ModalOverlay>
  );
}

function useRefresh() {
  const qc = useQueryClient();
  return () => {
    void qc.invalidateQueries({ queryKey: ["schedule"] });
    void qc.invalidateQueries({ queryKey: ["slots"] });
  };
}

/**
 * Screen 3a: book a free slot. Find the patient (MRN or family name + birth date), add a visit
 * reason, book. A `CONFLICT` (someone else took the slot a moment ago) is explained in words and
 * the schedule is refreshed underneath.
 */
export function BookDialog(props: {
  slot: Slot;
  practitionerId: string;
  practitionerName: string;
  timeZone: string;
  onClose(): void;
}) {
  const refresh = useRefresh();
  const [patient, setPatient] = useState<Found | null>(null);
  const when = `${formatDay(localDate(props.slot.startsAt, props.timeZone))} ${formatTime(props.slot.startsAt, props.timeZone)}–${formatTime(props.slot.endsAt, props.timeZone)}`;
  const [reason, setReason, clearReason, reasonRestored] = useDraft(
    `book.${props.practitionerId}.${props.slot.startsAt.toISOString()}`,
    "",
    `Visit reason for a booking ${when} with ${props.practitionerName}`,
  );
  const book = useMutation({
    mutationFn: (p: Found) =>
      haven.appointments.book.mutate({
        practitionerId: props.practitionerId,
        patientId: p.id,
        startsAt: props.slot.startsAt,
        endsAt: props.slot.endsAt,
        ...(reason.trim() ? { reason } : {}),
      }),
    onSuccess: () => {
      clearReason();
      refresh();
      props.onClose();
    },
    onError: (err) => {
      if (isConflict(err)) refresh();
    },
  });
  const issues = fieldIssues(book.error);
  return (
    <Modalish title={`Book ${when} with ${props.practitionerName}`} onClose={props.onClose}>
      {patient ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            book.mutate(patient);
          }}
          noValidate
        >
          <p>
            Patient: <strong>{`${patient.name.family}, ${patient.name.given.join(" ")}`}</strong>{" "}
            (born {patient.birthDate ?? "unknown"}, MRN {patient.mrn ?? "—"}){" "}
            <Button onPress={() => setPatient(null)}>Change patient</Button>
          </p>
          <Field
            label="Visit reason (optional)"
            name="reason"
            value={reason}
            onChange={setReason}
            error={issues.reason}
            {...(reasonRestored && reason
              ? { description: "Restored: the text you typed before you were signed out." }
              : {})}
          />
          {book.isError && Object.keys(issues).length === 0 && (
            <ErrorNote>{messageOf(book.error)}</ErrorNote>
          )}
          <div className="row">
            <Button type="submit" variant="primary" isDisabled={book.isPending}>
              {book.isPending ? "Booking…" : "Book appointment"}
            </Button>
            <Button onPress={props.onClose}>Close</Button>
          </div>
        </form>
      ) : (
        <>
          <PatientSearch idPrefix="book" pickLabel="Choose" onPick={setPatient} />
          <div className="row">
            <Button onPress={props.onClose}>Close</Button>
          </div>
        </>
      )}
    </Modalish>
  );
}

type Action = "checkIn" | "complete" | "markNoShow";
const ACTION_LABEL: Record<Action, string> = {
  checkIn: "Check in",
  complete: "Complete",
  markNoShow: "Mark no-show",
};

/**
 * Screen 3b: one appointment. Check-in, complete, no-show, cancel (with a reason) and reschedule
 * to another free slot of the same practitioner, each sent with the `version` last seen; a stale
 * version or a slot taken meanwhile answers `CONFLICT`, which is explained and refreshes the view.
 */
export function AppointmentDialog(props: {
  item: Item;
  timeZone: string;
  frontDesk: boolean;
  onClose(): void;
}) {
  const { item, timeZone: tz } = props;
  const refresh = useRefresh();
  const [cancelReason, setCancelReason, clearCancel, cancelRestored] = useDraft(
    `cancel.${item.id}`,
    "",
    `Cancellation reason for the appointment at ${formatDay(localDate(item.startsAt, tz))} ${formatTime(item.startsAt, tz)}`,
  );
  // A cancellation reason kept from before a sign-out reopens the cancel form with it.
  const [mode, setMode] = useState<"view" | "cancel" | "reschedule">(() =>
    cancelRestored && cancelReason ? "cancel" : "view",
  );
  const [done, setDone] = useState("");
  const day = localDate(item.startsAt, tz);
  const slots = useQuery({
    queryKey: ["slots", item.practitioner.id, "reschedule", day],
    enabled: mode === "reschedule",
    queryFn: () =>
      haven.appointments.slots.query({
        practitionerId: item.practitioner.id,
        from: startOfLocalDay(day, tz),
        to: startOfLocalDay(addDays(day, 7), tz),
      }),
  });
  const act = useMutation({
    mutationFn: async (
      a: { kind: Action } | { kind: "cancel" } | { kind: "reschedule"; slot: Slot },
    ) => {
      const ref = { appointmentId: item.id, version: item.version };
      if (a.kind === "cancel")
        return haven.appointments.cancel.mutate({ ...ref, reason: cancelReason });
      if (a.kind === "reschedule")
        return haven.appointments.reschedule.mutate({
          ...ref,
          startsAt: a.slot.startsAt,
          endsAt: a.slot.endsAt,
        });
      return haven.appointments[a.kind].mutate(ref);
    },
    onSuccess: (r, a) => {
      if (a.kind === "cancel") clearCancel();
      setMode("view");
      setDone(
        a.kind === "cancel"
          ? "Appointment cancelled."
          : a.kind === "reschedule"
            ? `Moved to ${formatDay(localDate(r.startsAt, tz))} ${formatTime(r.startsAt, tz)}.`
            : `${ACTION_LABEL[a.kind]}: done.`,
      );
      refresh();
    },
    onError: (err) => {
      if (isConflict(err)) refresh();
    },
  });
  const issues = fieldIssues(act.error);
  const started = item.startsAt.getTime() <= Date.now();
  const name = item.patientName
    ? `${item.patientName.family}, ${item.patientName.given.join(" ")}`
    : "Patient";

  return (
    <Modalish title={`${name} — ${formatTime(item.startsAt, tz)}`} onClose={props.onClose}>
      <dl className="facts">
        <dt>When</dt>
        <dd>
          {formatDay(day)} {formatTime(item.startsAt, tz)}–{formatTime(item.endsAt, tz)}
        </dd>
        <dt>Practitioner</dt>
        <dd>{item.practitioner.name}</dd>
        <dt>Status</dt>
        <dd data-testid="appt-status">{item.status.replace("_", " ")}</dd>
        {item.reason && (
          <>
            <dt>Reason</dt>
            <dd>{item.reason}</dd>
          </>
        )}
        {item.cancellationReason && (
          <>
            <dt>Cancellation reason</dt>
            <dd>{item.cancellationReason}</dd>
          </>
        )}
      </dl>
      {done && (
        <p className="note note-ok" role="status">
          {done}
        </p>
      )}
      {act.isError && Object.keys(issues).length === 0 && (
        <ErrorNote>{messageOf(act.error)}</ErrorNote>
      )}
      {mode === "view" && (
        <div className="row">
          {item.status === "booked" && props.frontDesk && (
            <Button variant="primary" onPress={() => act.mutate({ kind: "checkIn" })}>
              Check in
            </Button>
          )}
          {item.status === "checked_in" && (
            <Button variant="primary" onPress={() => act.mutate({ kind: "complete" })}>
              Complete
            </Button>
          )}
          {item.status === "booked" && started && (
            <Button onPress={() => act.mutate({ kind: "markNoShow" })}>Mark no-show</Button>
          )}
          {item.status === "booked" && props.frontDesk && (
            <Button onPress={() => setMode("reschedule")}>Reschedule</Button>
          )}
          {item.status === "booked" && (
            <Button variant="danger" onPress={() => setMode("cancel")}>
              Cancel appointment
            </Button>
          )}
          <Button onPress={props.onClose}>Close</Button>
        </div>
      )}
      {mode === "cancel" && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            act.mutate({ kind: "cancel" });
          }}
          noValidate
        >
          <Field
            label="Reason for cancelling"
            name="reason"
            value={cancelReason}
            onChange={setCancelReason}
            error={issues.reason}
            description={
              cancelRestored && cancelReason
                ? "Restored: the text you typed before you were signed out. At least 3 characters. Stored encrypted."
                : "At least 3 characters. Stored encrypted."
            }
          />
          <div className="row">
            <Button type="submit" variant="danger" isDisabled={act.isPending}>
              Cancel appointment
            </Button>
            <Button onPress={() => setMode("view")}>Back</Button>
          </div>
        </form>
      )}
      {mode === "reschedule" && (
        <section aria-label="Free slots for rescheduling">
          <h3>Move to a free slot (next 7 days)</h3>
          {slots.isPending && <Loading what="free slots" />}
          {slots.isError && <ErrorNote>{messageOf(slots.error)}</ErrorNote>}
          {slots.isSuccess && slots.data.slots.length === 0 && (
            <p>No free slots in the next 7 days.</p>
          )}
          <ul className="slot-list">
            {slots.data?.slots.slice(0, 40).map((s) => (
              <li key={s.startsAt.toISOString()}>
                <Button onPress={() => act.mutate({ kind: "reschedule", slot: s })}>
                  {formatDay(localDate(s.startsAt, tz))} {formatTime(s.startsAt, tz)}
                </Button>
              </li>
            ))}
          </ul>
          <Button onPress={() => setMode("view")}>Back</Button>
        </section>
      )}
    </Modalish>
  );
}
