import { useQuery } from "@tanstack/react-query";
import { type ReactNode, useId, useState } from "react";
import { haven } from "./api.ts";
import { type Found, PatientSearch } from "./PatientSearch.tsx";
import { Button } from "./ui.tsx";

/**
 * Pages through a cursor-paginated list the way the API gives it: page 1 has no cursor, each
 * further page is asked for with the previous answer's `nextCursor`. The stack of cursors seen
 * lets "Previous page" go back without the API needing backward cursors.
 */
export function useCursorPager() {
  const [stack, setStack] = useState<string[]>([]);
  return {
    /** Cursor for the page on screen (undefined = first page). */
    cursor: stack.at(-1),
    /** 1-based page number. */
    page: stack.length + 1,
    next(c: string) {
      setStack((s) => [...s, c]);
    },
    prev() {
      setStack((s) => s.slice(0, -1));
    },
    reset() {
      setStack([]);
    },
  };
}

/** Previous/next buttons for a {@link useCursorPager}, in a labelled navigation landmark. */
export function Pager(props: {
  pager: ReturnType<typeof useCursorPager>;
  nextCursor: string | null | undefined;
  label: string;
  busy?: boolean;
}) {
  const { pager, nextCursor } = props;
  if (pager.page === 1 && !nextCursor) return null;
  return (
    <nav className="row pager" aria-label={`${props.label} pages`}>
      <Button onPress={() => pager.prev()} isDisabled={pager.page === 1 || props.busy === true}>
        Previous page
      </Button>
      <span aria-live="polite" data-testid="page-number">
        Page {pager.page}
      </span>
      <Button
        onPress={() => nextCursor && pager.next(nextCursor)}
        isDisabled={!nextCursor || props.busy === true}
      >
        Next page
      </Button>
    </nav>
  );
}

/** A labelled native `<select>` (keyboard and screen-reader behaviour of the platform). */
export function SelectField<V extends string>(props: {
  label: string;
  value: V;
  onChange(v: V): void;
  options: readonly { value: V; label: string }[];
  name?: string;
}) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <select
        id={id}
        name={props.name}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value as V)}
      >
        {props.options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </div>
  );
}

/** The clinic's IANA zone (from `appointments.practitioners`), UTC until it is known. */
export function useClinicZone(): string {
  const clinic = useQuery({
    queryKey: ["practitioners"],
    queryFn: () => haven.appointments.practitioners.query({}),
    staleTime: 5 * 60_000,
  });
  return clinic.data?.timeZone ?? "UTC";
}

/**
 * Choose one patient (MRN, or family name + birth date) for a filter; shows the choice with
 * "Change" and, when `optional`, "Any patient". The patient's name is kept in memory only.
 */
export function PatientPicker(props: {
  value: Found | null;
  onChange(p: Found | null): void;
  idPrefix: string;
  legend: string;
  optional?: boolean;
}) {
  const [open, setOpen] = useState(false);
  const p = props.value;
  return (
    <fieldset className="patient-picker">
      <legend>{props.legend}</legend>
      {p && !open ? (
        <p className="row">
          <span data-testid={`${props.idPrefix}-patient`}>
            <strong>
              {p.name.family}, {p.name.given.join(" ")}
            </strong>{" "}
            (born {p.birthDate ?? "unknown"}, MRN {p.mrn ?? "—"})
          </span>
          <Button onPress={() => setOpen(true)}>Change patient</Button>
          {props.optional && <Button onPress={() => props.onChange(null)}>Any patient</Button>}
        </p>
      ) : open || !props.optional ? (
        <>
          <PatientSearch
            idPrefix={props.idPrefix}
            pickLabel="Choose"
            onPick={(found) => {
              props.onChange(found);
              setOpen(false);
            }}
          />
          {open && <Button onPress={() => setOpen(false)}>Keep the current choice</Button>}
        </>
      ) : (
        <p className="row">
          <span>Any patient</span>
          <Button onPress={() => setOpen(true)}>Choose a patient</Button>
        </p>
      )}
    </fieldset>
  );
}

/**
 * A horizontally scrollable wrapper for a wide table at phone width: a focusable, labelled region
 * so keyboard users can scroll it too (WCAG 2.1.1; axe `scrollable-region-focusable`).
 */
export function TableWrap(props: { label: string; children: ReactNode }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be focusable to be scrolled by keyboard
    <section className="table-wrap" aria-label={props.label} tabIndex={0}>
      {props.children}
    </section>
  );
}
