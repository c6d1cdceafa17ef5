import { readFileSync } from "node:fs";
import { z } from "zod";

/**
 * The reminder message. The wording is data (a template with `{{placeholders}}`), the code holds no
 * language: the default is English; `HAVEN_REMINDER_TEMPLATE` points at a JSON file with another
 * language's `subject`, `text` and `html`. Dates are formatted by `Intl` for `HAVEN_REMINDER_LOCALE`
 * in the clinic's IANA time zone, and every message also carries the ISO 8601 local time with its
 * UTC offset and zone name, which reads the same in every language.
 *
 * Minimum necessary (45 CFR 164.502(b)): the subject names nothing (lock screens and shared inboxes
 * show it); the body names the first name, the clinic and the time, never the reason, the
 * practitioner or anything else from the record.
 */
export const PLACEHOLDERS = [
  "greetingName",
  "clinicName",
  "when",
  "localTime",
  "timeZone",
] as const;
type Placeholder = (typeof PLACEHOLDERS)[number];

export interface ReminderTemplate {
  subject: string;
  text: string;
  html: string;
}

export const DEFAULT_TEMPLATE: ReminderTemplate = {
  subject: "Appointment reminder",
  text: [
    "Hello{{greetingName}},",
    "",
    "this is a reminder of your appointment at {{clinicName}} on {{when}}.",
    "Local time: {{localTime}} ({{timeZone}}).",
    "",
    "If you cannot attend, please contact the clinic to cancel or reschedule.",
    "",
    "This message was sent automatically; please do not reply.",
  ].join("\n"),
  html: [
    "<!doctype html>",
    '<html><body style="font-family: sans-serif; line-height: 1.5">',
    "<p>Hello{{greetingName}},</p>",
    "<p>this is a reminder of your appointment at <strong>{{clinicName}}</strong> on <strong>{{when}}</strong>.<br>",
    "Local time: <time>{{localTime}}</time> ({{timeZone}}).</p>",
    "<p>If you cannot attend, please contact the clinic to cancel or reschedule.</p>",
    '<p style="color: #666">This message was sent automatically; please do not reply.</p>',
    "</body></html>",
  ].join("\n"),
};

const templateFile = z.strictObject({
  subject: z.string().min(1).max(200),
  text: z.string().min(1).max(10_000),
  html: z.string().min(1).max(50_000),
});

/**
 * Load and check a template file: unknown `{{placeholders}}` and a subject that carries a
 * placeholder (it would put PHI on lock screens) are refused.
 * @throws Error naming the problem
 */
export function loadTemplate(path: string): ReminderTemplate {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(
      `HAVEN_REMINDER_TEMPLATE: cannot read ${path} as JSON (${(err as Error).name})`,
    );
  }
  const parsed = templateFile.safeParse(raw);
  if (!parsed.success) {
    throw new Error(
      `HAVEN_REMINDER_TEMPLATE: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  }
  const t = parsed.data;
  for (const [part, body] of Object.entries(t)) {
    for (const [, name] of body.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) {
      if (!(PLACEHOLDERS as readonly string[]).includes(name ?? "")) {
        throw new Error(`HAVEN_REMINDER_TEMPLATE: unknown placeholder {{${name}}} in ${part}`);
      }
      if (part === "subject") {
        throw new Error("HAVEN_REMINDER_TEMPLATE: the subject may not contain placeholders");
      }
    }
  }
  return t;
}

/** What a claimed reminder provides to the template (see `reminders.claimDue`). */
export interface ReminderFacts {
  firstName: string | null;
  clinicName: string;
  timeZone: string;
  /** UTC instant of the appointment. */
  startsAt: Date;
  /** Local wall time with offset from the server, e.g. `2027-03-15T09:00-04:00`. */
  localStart: string;
}

export interface RenderedReminder {
  subject: string;
  text: string;
  html: string;
}

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escape text for an HTML body or attribute. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/** Strip control characters (CR/LF in a name must not shape the message). */
function clean(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  return s.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
}

/** `2027-03-15T09:00-04:00` → `2027-03-15 09:00 UTC-04:00`. */
function isoLocal(localStart: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?([+-]\d{2}:\d{2}|Z)$/.exec(
    localStart,
  );
  if (!m) return localStart;
  return `${m[1]} ${m[2]} UTC${m[3] === "Z" ? "+00:00" : m[3]}`;
}

/** Building an `Intl.DateTimeFormat` costs far more than using one: keep one per locale and zone. */
const formatters = new Map<string, Intl.DateTimeFormat>();
function longDate(locale: string, timeZone: string): Intl.DateTimeFormat {
  const key = `${locale}\u0000${timeZone}`;
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(locale, { timeZone, dateStyle: "full", timeStyle: "short" });
    if (formatters.size >= 256) formatters.clear();
    formatters.set(key, f);
  }
  return f;
}

/**
 * Render a reminder in the clinic's time zone.
 * @param locale BCP 47 locale for the long date (`Intl.DateTimeFormat`, `dateStyle: full`)
 */
export function renderReminder(
  facts: ReminderFacts,
  locale: string,
  template: ReminderTemplate = DEFAULT_TEMPLATE,
): RenderedReminder {
  const when = longDate(locale, facts.timeZone).format(facts.startsAt);
  const firstName = facts.firstName ? clean(facts.firstName) : "";
  const values: Record<Placeholder, string> = {
    greetingName: firstName ? ` ${firstName}` : "",
    clinicName: clean(facts.clinicName),
    when,
    localTime: isoLocal(facts.localStart),
    timeZone: facts.timeZone,
  };
  const fill = (body: string, encode: (s: string) => string) =>
    body.replace(/\{\{\s*([^}]*?)\s*\}\}/g, (_m, name: string) =>
      encode(values[name as Placeholder] ?? ""),
    );
  return {
    subject: clean(fill(template.subject, (s) => s)),
    text: fill(template.text, (s) => s),
    html: fill(template.html, escapeHtml),
  };
}
