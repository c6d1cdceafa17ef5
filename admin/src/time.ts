/**
 * Calendar arithmetic in the clinic's IANA time zone with `Intl` only (no date library in the
 * bundle). Dates are `YYYY-MM-DD` strings of the clinic's local calendar; instants are `Date`s.
 */

function parts(t: Date, timeZone: string): Record<string, number> {
  const out: Record<string, number> = {};
  const fmt = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
  for (const p of fmt.formatToParts(t)) if (p.type !== "literal") out[p.type] = Number(p.value);
  return out;
}

/** Offset of `timeZone` from UTC at instant `t`, milliseconds (e.g. -4 h for New York in summer). */
function offsetMs(t: Date, timeZone: string): number {
  const p = parts(t, timeZone);
  const wall = Date.UTC(
    p.year ?? 0,
    (p.month ?? 1) - 1,
    p.day ?? 1,
    p.hour ?? 0,
    p.minute ?? 0,
    p.second ?? 0,
  );
  return wall - Math.floor(t.getTime() / 1000) * 1000;
}

/** The UTC instant at which local `date` 00:00 begins in `timeZone` (DST-correct to the hour). */
export function startOfLocalDay(date: string, timeZone: string): Date {
  const [y, m, d] = date.split("-").map(Number);
  const guess = Date.UTC(y ?? 1970, (m ?? 1) - 1, d ?? 1);
  let t = guess - offsetMs(new Date(guess), timeZone);
  t = guess - offsetMs(new Date(t), timeZone);
  return new Date(t);
}

/** Local calendar date (`YYYY-MM-DD`) of instant `t` in `timeZone`. */
export function localDate(t: Date, timeZone: string): string {
  const p = parts(t, timeZone);
  return `${p.year}-${String(p.month).padStart(2, "0")}-${String(p.day).padStart(2, "0")}`;
}

/** Local hour 0–23 of instant `t` in `timeZone`. */
export function localHour(t: Date, timeZone: string): number {
  return parts(t, timeZone).hour ?? 0;
}

/** `date` plus `days` calendar days. */
export function addDays(date: string, days: number): string {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y ?? 1970, (m ?? 1) - 1, (d ?? 1) + days)).toISOString().slice(0, 10);
}

/** Monday of the ISO week containing `date`. */
export function startOfWeek(date: string): string {
  const [y, m, d] = date.split("-").map(Number);
  const wd = new Date(Date.UTC(y ?? 1970, (m ?? 1) - 1, d ?? 1)).getUTCDay();
  return addDays(date, -((wd + 6) % 7));
}

/** `09:30` in the clinic's zone. */
export function formatTime(t: Date, timeZone: string): string {
  return new Intl.DateTimeFormat("en-GB", { timeZone, hour: "2-digit", minute: "2-digit" }).format(
    t,
  );
}

/** `Mon 14 Dec` for a local calendar date. */
export function formatDay(date: string): string {
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: "UTC",
    weekday: "short",
    day: "numeric",
    month: "short",
  }).format(new Date(`${date}T12:00:00Z`));
}

/** The zone's name as people read it: `America/New_York (EST, UTC−05:00)`. */
export function zoneLabel(timeZone: string, at: Date = new Date()): string {
  const short = new Intl.DateTimeFormat("en-US", { timeZone, timeZoneName: "short" })
    .formatToParts(at)
    .find((p) => p.type === "timeZoneName")?.value;
  const off = offsetMs(at, timeZone) / 60_000;
  const sign = off < 0 ? "−" : "+";
  const hh = String(Math.floor(Math.abs(off) / 60)).padStart(2, "0");
  const mm = String(Math.abs(off) % 60).padStart(2, "0");
  return `${timeZone} (${short ? `${short}, ` : ""}UTC${sign}${hh}:${mm})`;
}

/**
 * The UTC instant of a local wall time `YYYY-MM-DDTHH:mm` (an `<input type="datetime-local">`
 * value) in `timeZone`; null when the text is not such a value. In a DST gap the result is the
 * instant one offset-step later, as the zone's clocks show it.
 */
export function instantOfLocal(local: string, timeZone: string): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(local);
  if (!m) return null;
  const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]));
  let t = wall - offsetMs(new Date(wall), timeZone);
  t = wall - offsetMs(new Date(t), timeZone);
  return new Date(t);
}

/** `2026-12-02 14:05:09` in `timeZone` (a log-style stamp for audit and queue tables). */
export function formatStamp(t: Date, timeZone: string): string {
  const p = parts(t, timeZone);
  const two = (n: number | undefined) => String(n ?? 0).padStart(2, "0");
  return `${p.year}-${two(p.month)}-${two(p.day)} ${two(p.hour)}:${two(p.minute)}:${two(p.second)}`;
}
