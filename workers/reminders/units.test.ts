import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { classifySendError } from "./classify.ts";
import { CronConfigError, loadCronConfig, parseInterval } from "./config.ts";
import { escapeHtml, loadTemplate, renderReminder } from "./template.ts";
import { ReportGroupCommit, senderDomain } from "./worker.ts";

const dir = mkdtempSync(join(tmpdir(), "haven-reminder-template-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("renderReminder", () => {
  const base = {
    firstName: "Ana",
    clinicName: "Harbor Family Clinic",
    timeZone: "America/New_York",
    startsAt: new Date("2030-03-10T14:30:00Z"),
    localStart: "2030-03-10T10:30-04:00",
  };

  it("shows the time in the clinic's zone on both sides of a DST change", () => {
    // 10 March 2030: New York springs forward at 02:00. 14:30Z is 10:30 EDT; a day before, 09:30 EST.
    const after = renderReminder(base, "en-US");
    expect(after.text).toContain("Sunday, March 10, 2030 at 10:30");
    expect(after.text).toContain("Local time: 2030-03-10 10:30 UTC-04:00 (America/New_York).");
    const before = renderReminder(
      { ...base, startsAt: new Date("2030-03-09T14:30:00Z"), localStart: "2030-03-09T09:30-05:00" },
      "en-US",
    );
    expect(before.text).toContain("Saturday, March 9, 2030 at 9:30");
    expect(before.text).toContain("2030-03-09 09:30 UTC-05:00");
  });

  it("formats the long date for the configured locale; the ISO line is the same in every language", () => {
    const de = renderReminder(
      { ...base, timeZone: "Europe/Berlin", localStart: "2030-03-10T15:30+01:00" },
      "de-DE",
    );
    expect(de.text).toContain("Sonntag, 10. März 2030 um 15:30");
    expect(de.text).toContain("2030-03-10 15:30 UTC+01:00 (Europe/Berlin)");
  });

  it("names nothing in the subject and escapes the HTML part", () => {
    const r = renderReminder(
      { ...base, firstName: "<b>Ana</b>", clinicName: 'A & B "Care"' },
      "en-US",
    );
    expect(r.subject).toBe("Appointment reminder");
    expect(r.html).toContain("Hello &lt;b&gt;Ana&lt;/b&gt;,");
    expect(r.html).toContain("A &amp; B &quot;Care&quot;");
    expect(r.html).not.toContain("<b>Ana</b>");
    expect(r.text).toContain("Hello <b>Ana</b>,"); // plain text is not HTML
    expect(escapeHtml(`'`)).toBe("&#39;");
  });

  it("greets without a name when the record has none, and strips control characters", () => {
    expect(renderReminder({ ...base, firstName: null }, "en-US").text.startsWith("Hello,\n")).toBe(
      true,
    );
    const r = renderReminder({ ...base, firstName: "Ana\r\nBcc: x@y" }, "en-US");
    expect(r.text).toContain("Hello Ana Bcc: x@y,");
    expect(r.text.split("\n")[0]).toBe("Hello Ana Bcc: x@y,");
  });

  it("uses a template file, and refuses unknown placeholders and a personalised subject", () => {
    const good = join(dir, "fr.json");
    writeFileSync(
      good,
      JSON.stringify({
        subject: "Rappel de rendez-vous",
        text: "Bonjour{{greetingName}}, rendez-vous à {{clinicName}} le {{when}} ({{localTime}}, {{timeZone}}).",
        html: "<p>Bonjour{{greetingName}}</p>",
      }),
    );
    const r = renderReminder(
      { ...base, timeZone: "Europe/Paris", localStart: "2030-03-10T15:30+01:00" },
      "fr-FR",
      loadTemplate(good),
    );
    expect(r.subject).toBe("Rappel de rendez-vous");
    expect(r.text).toContain(
      "Bonjour Ana, rendez-vous à Harbor Family Clinic le dimanche 10 mars 2030",
    );
    expect(r.text).toContain("(2030-03-10 15:30 UTC+01:00, Europe/Paris)");

    const unknown = join(dir, "bad1.json");
    writeFileSync(unknown, JSON.stringify({ subject: "x", text: "{{reason}}", html: "x" }));
    expect(() => loadTemplate(unknown)).toThrow(/unknown placeholder \{\{reason\}\}/);
    const personal = join(dir, "bad2.json");
    writeFileSync(
      personal,
      JSON.stringify({ subject: "Hi {{greetingName}}", text: "x", html: "x" }),
    );
    expect(() => loadTemplate(personal)).toThrow(/subject may not contain placeholders/);
    expect(() => loadTemplate(join(dir, "missing.json"))).toThrow(/cannot read/);
  });
});

describe("classifySendError", () => {
  it("keeps reply codes, never reply text", () => {
    const r = classifySendError({
      code: "EMESSAGE",
      responseCode: 550,
      response: "550 5.1.1 <jane@example.test>: Recipient address rejected",
    });
    expect(r).toEqual({ outcome: "retry", code: "smtp_550_5.1.1" });
    expect(JSON.stringify(r)).not.toContain("jane");
    expect(classifySendError({ responseCode: 451, response: "451 4.3.0 try later" })).toEqual({
      outcome: "retry",
      code: "smtp_451_4.3.0",
    });
    expect(classifySendError({ responseCode: 421 })).toEqual({
      outcome: "retry",
      code: "smtp_421",
    });
  });
  it("connection problems are transient; a refused envelope is permanent", () => {
    expect(classifySendError({ code: "ECONNREFUSED" })).toEqual({
      outcome: "retry",
      code: "econnrefused",
    });
    expect(classifySendError({ code: "ETIMEDOUT" })).toEqual({
      outcome: "retry",
      code: "etimedout",
    });
    expect(classifySendError({ code: "EENVELOPE" })).toEqual({
      outcome: "failed",
      code: "invalid_address",
    });
    expect(classifySendError(new Error("boom"))).toEqual({ outcome: "retry", code: "send_error" });
    expect(classifySendError({ code: "weird code with spaces <x@y>" })).toEqual({
      outcome: "retry",
      code: "send_error",
    });
    expect(classifySendError(undefined)).toEqual({ outcome: "retry", code: "send_error" });
  });
});

describe("cron configuration", () => {
  const ok = { HAVEN_URL: "http://127.0.0.1:3000", HAVEN_API_KEY: "hk_x" };
  it("applies defaults", () => {
    expect(loadCronConfig(ok)).toMatchObject({
      HAVEN_REMINDER_CONCURRENCY: 4,
      HAVEN_REMINDER_BATCH_SIZE: 50,
      HAVEN_REMINDER_LEASE_SECONDS: 300,
      HAVEN_REMINDER_LOCALE: "en-US",
    });
  });
  it("names every bad variable and never echoes the key", () => {
    try {
      loadCronConfig({
        HAVEN_URL: "ftp://x",
        HAVEN_API_KEY: "",
        HAVEN_SMTP_URL: "http://mail",
        HAVEN_REMINDER_CONCURRENCY: "1000",
        HAVEN_REMINDER_BATCH_SIZE: "ten",
        HAVEN_REMINDER_LEASE_SECONDS: "0",
        HAVEN_REMINDER_LOCALE: "xx-not-a-locale-!!",
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CronConfigError);
      const msg = (err as Error).message;
      for (const v of [
        "HAVEN_URL",
        "HAVEN_API_KEY",
        "HAVEN_SMTP_URL",
        "HAVEN_REMINDER_CONCURRENCY",
        "HAVEN_REMINDER_BATCH_SIZE",
        "HAVEN_REMINDER_LEASE_SECONDS",
        "HAVEN_REMINDER_LOCALE",
      ]) {
        expect(msg).toContain(v);
      }
    }
    try {
      loadCronConfig({ ...ok, HAVEN_API_KEY: "hk_secret", HAVEN_URL: "nope" });
    } catch (err) {
      expect((err as Error).message).not.toContain("hk_secret");
    }
  });
  it("parses --every intervals", () => {
    expect(parseInterval("60s")).toBe(60_000);
    expect(parseInterval("5m")).toBe(300_000);
    expect(parseInterval("1h")).toBe(3_600_000);
    expect(parseInterval("250ms")).toBe(250);
    for (const bad of ["60", "1d", "-5s", "0s", "50ms", "25h", "s"]) {
      expect(() => parseInterval(bad)).toThrow(CronConfigError);
    }
  });
  it("takes the Message-ID domain from the sender", () => {
    expect(senderDomain("Haven <no-reply@clinic.example>")).toBe("clinic.example");
    expect(senderDomain("reminders@mail.clinic.example")).toBe("mail.clinic.example");
    expect(senderDomain("nonsense")).toBe("haven.invalid");
  });
});

describe("ReportGroupCommit (reports by group commit, no timer)", () => {
  it("sends at once when idle; what arrives meanwhile goes together in the next call", async () => {
    const calls: number[][] = [];
    const gates: (() => void)[] = [];
    const g = new ReportGroupCommit<number>(async (batch) => {
      calls.push([...batch]);
      await new Promise<void>((r) => gates.push(r));
    });
    const settled: number[] = [];
    const p1 = g.submit(1).then(() => settled.push(1));
    expect(calls).toEqual([[1]]); // out at once, synchronously: no timer
    const rest = [2, 3, 4].map((n) => g.submit(n).then(() => settled.push(n)));
    expect(g.queued).toBe(3);
    expect(calls).toHaveLength(1); // one call in flight at a time
    gates.shift()?.();
    await p1;
    expect(settled).toEqual([1]);
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([[1], [2, 3, 4]]);
    gates.shift()?.();
    await Promise.all(rest);
    expect(settled).toEqual([1, 2, 3, 4]);
    const p5 = g.submit(5);
    expect(calls.at(-1)).toEqual([5]); // idle again: at once
    gates.shift()?.();
    await p5;
  });

  it("caps a call at 500 reports; a flush that throws fails its own reports only", async () => {
    const sizes: number[] = [];
    let first = true;
    const g = new ReportGroupCommit<number>(async (batch) => {
      sizes.push(batch.length);
      if (first) {
        first = false;
        await new Promise((r) => setImmediate(r));
        throw new Error("flush must not throw, but a report must not hang if it does");
      }
    });
    const all = Array.from({ length: 1201 }, (_, i) => g.submit(i));
    await expect(all[0]).rejects.toThrow(/must not throw/);
    await Promise.all(all.slice(1));
    expect(sizes).toEqual([1, 500, 500, 200]);
  });
});
