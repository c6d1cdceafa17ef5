import { Temporal } from "temporal-polyfill";

/**
 * The slot engine: pure functions that cut a practitioner's working hours (LOCAL wall-clock
 * times in the clinic's IANA zone) into bookable slots returned as UTC instants. All zone
 * arithmetic goes through Temporal (`temporal-polyfill`); there is no hand-written offset math.
 *
 * DST rules (deliberate, tested for America/New_York, Europe/Berlin, Australia/Lord_Howe):
 * 1. Slots sit on the local grid `start, start + L, start + 2L, …` of each working window, so a
 *    09:00 slot is 09:00 local on both sides of a change (its UTC instant moves, the wall time not).
 * 2. A window covers the instants from the first moment the clock shows its start to the last
 *    moment it shows its end. A boundary inside a skipped hour is the transition instant.
 * 3. A grid time that does not exist (skipped by a spring-forward change) yields no slot; it is not
 *    shifted, because the shifted time would collide with the next real slot.
 * 4. A grid time that occurs twice (repeated by a fall-back change) yields a slot at each
 *    occurrence: both are real, distinct instants inside the working window.
 * 5. Every slot lasts exactly L real minutes and lies inside its window; a slot that would overlap
 *    an earlier slot of the same day (possible only next to a change) is dropped.
 */

/** Minutes from local midnight, 0–1440 (1440 = end of day, allowed as a window end only). */
export type LocalMinutes = number;

/** A regular weekly window: ISO weekday (1 = Monday … 7 = Sunday), local `[start, end)`. */
export interface WeeklyWindow {
  weekday: number;
  start: LocalMinutes;
  end: LocalMinutes;
  slotMinutes: number;
}

/** A one-off change on a local date (`YYYY-MM-DD`); `closed` without times = whole day off. */
export type DayException =
  | { date: string; kind: "closed"; start: LocalMinutes | null; end: LocalMinutes | null }
  | { date: string; kind: "extra"; start: LocalMinutes; end: LocalMinutes; slotMinutes: number };

/** A half-open UTC interval `[startsAt, endsAt)`. */
export interface Interval {
  startsAt: Date;
  endsAt: Date;
}

/** A bookable slot: UTC instants plus the local wall time with its offset, for display. */
export interface Slot extends Interval {
  /** e.g. `2027-03-15T09:00-04:00` (local time and the UTC offset in force). */
  local: string;
}

export interface SlotQuery {
  /** IANA zone of the organization, e.g. `Europe/Berlin`. */
  timeZone: string;
  weekly: readonly WeeklyWindow[];
  exceptions: readonly DayException[];
  /** Busy intervals (active appointments of the practitioner), UTC. */
  busy: readonly Interval[];
  /** Return slots whose start lies in `[from, to)`. */
  from: Date;
  to: Date;
  /** Drop slots starting before this instant (usually "now"). */
  notBefore?: Date;
}

/** `HH:MM` or `HH:MM:SS` (as Postgres `time` returns it) → minutes from midnight. */
export function parseLocalTime(text: string): LocalMinutes {
  const m = /^(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(text);
  if (!m) throw new RangeError(`not a local time: ${text}`);
  const minutes = Number(m[1]) * 60 + Number(m[2]);
  if (Number(m[2]) > 59 || minutes > 1440 || (minutes === 1440 && Number(m[3] ?? 0) !== 0)) {
    throw new RangeError(`not a local time: ${text}`);
  }
  return minutes;
}

/** Minutes from midnight → `HH:MM`. */
export function formatLocalTime(minutes: LocalMinutes): string {
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`;
}

/** Throws RangeError when `zone` is not an IANA time zone this runtime knows. */
export function assertTimeZone(zone: string): void {
  Temporal.Now.zonedDateTimeISO(zone);
}

function plainDateTime(date: Temporal.PlainDate, minutes: LocalMinutes): Temporal.PlainDateTime {
  if (minutes === 1440) return date.add({ days: 1 }).toPlainDateTime({ hour: 0, minute: 0 });
  return date.toPlainDateTime({ hour: Math.floor(minutes / 60), minute: minutes % 60 });
}

/**
 * Every instant at which the clock in `zone` shows `date` at `minutes`: one normally, two in a
 * repeated hour, none in a skipped hour.
 */
export function occurrences(
  date: Temporal.PlainDate,
  minutes: LocalMinutes,
  zone: string,
  dayHasTransition = true,
): Temporal.ZonedDateTime[] {
  const pdt = plainDateTime(date, minutes);
  // On a day without a zone transition every wall time exists exactly once (one conversion).
  if (!dayHasTransition && minutes < 1440) return [pdt.toZonedDateTime(zone)];
  const earlier = pdt.toZonedDateTime(zone, { disambiguation: "earlier" });
  const later = pdt.toZonedDateTime(zone, { disambiguation: "later" });
  if (!earlier.toPlainDateTime().equals(pdt)) return []; // in a gap: the wall time never happens
  return earlier.epochNanoseconds === later.epochNanoseconds ? [earlier] : [earlier, later];
}

/** Rule 2: the instant a window boundary stands for. */
function boundary(
  date: Temporal.PlainDate,
  minutes: LocalMinutes,
  zone: string,
  side: "start" | "end",
): bigint {
  const found = occurrences(date, minutes, zone);
  const first = found[0];
  if (first) return (side === "start" ? first : (found.at(-1) ?? first)).epochNanoseconds;
  // In a gap: the transition instant, i.e. the first moment after the skipped wall times.
  const before = plainDateTime(date, minutes).toZonedDateTime(zone, { disambiguation: "earlier" });
  const transition = before.getTimeZoneTransition("next");
  if (!transition) throw new RangeError("gap without a transition");
  return transition.epochNanoseconds;
}

const NS_PER_MINUTE = 60_000_000_000n;
const toDate = (ns: bigint) => new Date(Number(ns / 1_000_000n));
const toNs = (d: Date) => BigInt(d.getTime()) * 1_000_000n;

interface NsInterval {
  start: bigint;
  end: bigint;
}

/** Does the zone change its UTC offset at any moment of this local date? */
function hasTransition(date: Temporal.PlainDate, zone: string): boolean {
  const start = date.toZonedDateTime({ timeZone: zone });
  const next = start.getTimeZoneTransition("next");
  return (
    next !== null &&
    Temporal.ZonedDateTime.compare(
      next,
      date.add({ days: 1 }).toZonedDateTime({ timeZone: zone }),
    ) <= 0
  );
}

function slotsOfWindow(
  date: Temporal.PlainDate,
  window: { start: LocalMinutes; end: LocalMinutes; slotMinutes: number },
  zone: string,
  dayHasTransition: boolean,
): { start: bigint; end: bigint; zdt: Temporal.ZonedDateTime }[] {
  const ws = boundary(date, window.start, zone, "start");
  const we = boundary(date, window.end, zone, "end");
  const length = BigInt(window.slotMinutes) * NS_PER_MINUTE;
  const out: { start: bigint; end: bigint; zdt: Temporal.ZonedDateTime }[] = [];
  for (let m = window.start; m < window.end && m < 1440; m += window.slotMinutes) {
    for (const zdt of occurrences(date, m, zone, dayHasTransition)) {
      const start = zdt.epochNanoseconds;
      const end = start + length;
      if (start >= ws && end <= we) out.push({ start, end, zdt });
    }
  }
  return out;
}

const overlaps = (a: NsInterval, b: NsInterval) => a.start < b.end && b.start < a.end;

/**
 * Free slots of one practitioner whose start lies in `[from, to)`, ascending.
 * Weekly windows of the date's weekday apply unless a whole-day `closed` exception says otherwise;
 * partial `closed` exceptions remove the slots they overlap; `extra` exceptions add windows.
 * Slots overlapping a busy interval, or starting before `notBefore`, are left out.
 * @throws RangeError for an unknown time zone
 */
export function computeSlots(q: SlotQuery): Slot[] {
  const from = toNs(q.from);
  const to = toNs(q.to);
  if (to <= from) return [];
  const notBefore = q.notBefore ? toNs(q.notBefore) : null;
  const busy = q.busy.map((b) => ({ start: toNs(b.startsAt), end: toNs(b.endsAt) }));
  const firstDate = Temporal.Instant.fromEpochNanoseconds(from)
    .toZonedDateTimeISO(q.timeZone)
    .toPlainDate();
  const lastDate = Temporal.Instant.fromEpochNanoseconds(to - 1n)
    .toZonedDateTimeISO(q.timeZone)
    .toPlainDate();
  const byDate = new Map<string, DayException[]>();
  for (const e of q.exceptions) byDate.set(e.date, [...(byDate.get(e.date) ?? []), e]);

  const result: Slot[] = [];
  for (
    let date = firstDate;
    Temporal.PlainDate.compare(date, lastDate) <= 0;
    date = date.add({ days: 1 })
  ) {
    const exceptions = byDate.get(date.toString()) ?? [];
    const closedAllDay = exceptions.some((e) => e.kind === "closed" && e.start === null);
    const windows: { start: LocalMinutes; end: LocalMinutes; slotMinutes: number }[] = [];
    if (!closedAllDay) {
      for (const w of q.weekly) if (w.weekday === date.dayOfWeek) windows.push(w);
      for (const e of exceptions) if (e.kind === "extra") windows.push(e);
    }
    const blocked: NsInterval[] = [];
    for (const e of exceptions) {
      if (e.kind === "closed" && e.start !== null && e.end !== null) {
        blocked.push({
          start: boundary(date, e.start, q.timeZone, "start"),
          end: boundary(date, e.end, q.timeZone, "end"),
        });
      }
    }
    if (windows.length === 0) continue;
    const dayHasTransition = hasTransition(date, q.timeZone);
    const candidates = windows
      .flatMap((w) => slotsOfWindow(date, w, q.timeZone, dayHasTransition))
      .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const kept: NsInterval[] = [];
    for (const c of candidates) {
      if (kept.some((k) => overlaps(k, c))) continue; // rule 5
      if (blocked.some((b) => overlaps(b, c))) continue;
      kept.push(c);
      if (c.start < from || c.start >= to) continue;
      if (notBefore !== null && c.start < notBefore) continue;
      if (busy.some((b) => overlaps(b, c))) continue;
      result.push({
        startsAt: toDate(c.start),
        endsAt: toDate(c.end),
        local: c.zdt.toString({ timeZoneName: "never", smallestUnit: "minute" }),
      });
    }
  }
  return result;
}

/** The local calendar date (`YYYY-MM-DD`) of an instant in `zone`. */
export function localDateOf(instant: Date, zone: string): string {
  return Temporal.Instant.fromEpochMilliseconds(instant.getTime())
    .toZonedDateTimeISO(zone)
    .toPlainDate()
    .toString();
}

/**
 * The UTC instants bounding a local calendar day in `zone`: `[start of date, start of next date)`.
 * Handles days that start at 01:00 (zones whose DST change happens at midnight) and 23/25-hour days.
 */
export function localDayBounds(date: string, zone: string): Interval {
  const d = Temporal.PlainDate.from(date);
  const start = d.toZonedDateTime({ timeZone: zone });
  const end = d.add({ days: 1 }).toZonedDateTime({ timeZone: zone });
  return {
    startsAt: new Date(start.epochMilliseconds),
    endsAt: new Date(end.epochMilliseconds),
  };
}
