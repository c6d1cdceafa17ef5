import { spawn } from "node:child_process";
import { and, eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { organizations, reminders } from "../../db/schema/index.ts";
import { DEFAULT_REMINDER_SETTINGS } from "../../server/reminders/settings.ts";
import {
  SECRET_REASON,
  type SeededReminder,
  seedDueReminders,
} from "../../server/reminders/test/fixtures.ts";
import { makeOrganization, makeServiceApiKey, makeUser } from "../../server/test/factory.ts";
import { actorFor, createHarness, type Harness } from "../../server/test/harness.ts";
import {
  type CronProcess,
  type CronSummary,
  killAll,
  type Sink,
  type SinkMessage,
  spawnCron,
  startSink,
} from "./test/processes.ts";

/**
 * The reminder cron as it runs in production: the real entry point (`npm run reminders`) in child
 * processes, talking to a Haven server on port 0 through the SDK with a service API key, delivering
 * through nodemailer's SMTP pool to a real SMTP server process (`smtp-server`) on a loopback port.
 * Haven's clock is injected and frozen: leases and backoff expire only when a test moves it.
 */
let h: Harness;
let url: string;
let sink: Sink;

beforeAll(async () => {
  h = await createHarness({ maxConnections: 24, logLevel: "warn" });
  h.clock.now = new Date("2030-01-14T20:00:00Z");
  url = await h.listen();
  sink = await startSink();
});
afterAll(async () => {
  await killAll();
  await sink?.close();
  await h?.close();
});
beforeEach(async () => {
  h.services.reminders = { ...DEFAULT_REMINDER_SETTINGS };
  await sink.command({ mode: "accept", delayMs: 0 });
});

/** A fresh clinic with its own key, so each test sees only its own queue. */
async function clinic(timezone = "America/Los_Angeles", name = "Harbor Family Clinic") {
  const organizationId = await makeOrganization(h.deps, name);
  await h.deps.db
    .update(organizations)
    .set({ timezone })
    .where(eq(organizations.id, organizationId));
  const { key } = await makeServiceApiKey(h.deps, organizationId);
  return { organizationId, key };
}

function cron(key: string, env: Record<string, string> = {}, args: string[] = []): CronProcess {
  return spawnCron({ url, apiKey: key, smtpUrl: sink.url, env, args });
}

async function finished(p: CronProcess): Promise<CronSummary> {
  const code = await p.exit;
  expect(code, p.stderr()).toBe(0);
  const s = p.summaries();
  expect(s.length).toBeGreaterThanOrEqual(1);
  return s.at(-1) as CronSummary;
}

const messageIdOf = (reminderId: string) => `<reminder.${reminderId}@haven.invalid>`;

function messagesFor(seeded: SeededReminder[]): SinkMessage[] {
  const ids = new Set(seeded.map((s) => messageIdOf(s.reminderId)));
  return sink.messages.filter((m) => m.messageId !== null && ids.has(m.messageId));
}

function countsById(messages: SinkMessage[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of messages)
    counts.set(m.messageId as string, (counts.get(m.messageId as string) ?? 0) + 1);
  return counts;
}

async function statuses(seeded: { reminderId: string }[]) {
  return h.deps.db
    .select()
    .from(reminders)
    .where(
      inArray(
        reminders.id,
        seeded.map((s) => s.reminderId),
      ),
    );
}

describe("delivery through a real SMTP server", () => {
  it("sends every due reminder once, in the clinic's time zone, with text and HTML parts", async () => {
    const { organizationId, key } = await clinic();
    const seeded = await seedDueReminders(h.deps, {
      organizationId,
      count: 3,
      now: h.clock.now,
      // 17:30Z, 17:40Z, 17:50Z on 15 January = 09:30, 09:40, 09:50 Pacific Standard Time.
      startsAt: (i) => new Date(Date.UTC(2030, 0, 15, 17, 30 + 10 * i)),
    });
    const run = cron(key, { LOG_LEVEL: "debug" }); // even debug lines carry no PHI
    const summary = await finished(run);
    expect(summary).toMatchObject({ claimed: 3, sent: 3, retried: 0, failed: 0, stale: 0 });
    expect(summary.elapsedMs).toBeGreaterThanOrEqual(0);

    const got = messagesFor(seeded);
    expect(got).toHaveLength(3);
    expect(got.map((m) => m.to).sort()).toEqual(seeded.map((s) => [s.email]).sort());
    for (const [i, s] of seeded.entries()) {
      const m = got.find((x) => x.to[0] === s.email) as SinkMessage;
      const local = `09:${30 + 10 * i}`;
      expect(m.subject).toBe("Appointment reminder");
      expect(m.text).toContain(`Hello ${s.demographics.name.given[0]},`);
      expect(m.text).toContain("Harbor Family Clinic");
      expect(m.text).toContain(`Tuesday, January 15, 2030 at 9:${30 + 10 * i}`);
      expect(m.text).toContain(`Local time: 2030-01-15 ${local} UTC-08:00 (America/Los_Angeles).`);
      expect(m.html).toContain(`<time>2030-01-15 ${local} UTC-08:00</time>`);
      // Minimum necessary: no reason, no family name, nothing else from the record.
      for (const body of [m.text, m.html, m.subject]) {
        expect(body).not.toContain(SECRET_REASON);
        expect(body).not.toContain(s.demographics.name.family);
        expect(body).not.toContain(s.demographics.phone as string);
      }
      expect(m.messageId).toBe(`<reminder.${s.reminderId}@haven.invalid>`);
    }
    const rows = await statuses(seeded);
    expect(rows.every((r) => r.status === "sent" && r.attempts === 1)).toBe(true);
    expect(rows.map((r) => r.providerMessageId).sort()).toEqual(got.map((m) => m.messageId).sort());

    // Structured logs: ids and counts, never an address, a name or the text.
    const logText = JSON.stringify(run.lines);
    for (const s of seeded) {
      expect(logText).not.toContain(s.email as string);
      expect(logText).not.toContain(s.demographics.name.given[0] as string);
    }
    expect(logText).not.toContain("Harbor Family Clinic");
    expect(logText).not.toContain(key);
    expect(run.lines.filter((l) => l.msg === "reminder reported")).toHaveLength(3);
  });

  it("loops with --every until SIGTERM, picking up reminders that fall due between runs", async () => {
    const { organizationId, key } = await clinic();
    const first = await seedDueReminders(h.deps, { organizationId, count: 2, now: h.clock.now });
    const loop = cron(key, {}, ["--every", "200ms"]);
    await expect.poll(() => messagesFor(first).length, { timeout: 30_000 }).toBe(2);
    await expect.poll(() => loop.summaries().length, { timeout: 30_000 }).toBeGreaterThanOrEqual(1);
    expect(loop.summaries()[0]).toMatchObject({ run: 1, claimed: 2, sent: 2 });
    const second = await seedDueReminders(h.deps, { organizationId, count: 2, now: h.clock.now });
    await expect.poll(() => messagesFor(second).length, { timeout: 30_000 }).toBe(2);
    loop.child.kill("SIGTERM");
    expect(await loop.exit).toBe(0);
    const runs = loop.summaries();
    expect(runs.length).toBeGreaterThanOrEqual(2);
    expect(runs.reduce((n, r) => n + r.sent, 0)).toBe(4);
    expect(messagesFor([...first, ...second])).toHaveLength(4);
  });

  it("exits with code 2 and names the variable when configuration is invalid", async () => {
    const bad = spawnCron({
      url: "not a url",
      apiKey: "",
      env: { HAVEN_REMINDER_CONCURRENCY: "0" },
    });
    expect(await bad.exit).toBe(2);
    expect(bad.stderr()).toContain("HAVEN_URL");
    expect(bad.stderr()).toContain("HAVEN_API_KEY");
    expect(bad.stderr()).toContain("HAVEN_REMINDER_CONCURRENCY");
  });

  it("is what `npm run reminders` runs, arguments passed through", async () => {
    const help = spawn("npm", ["run", "--silent", "reminders", "--", "--help"], {
      cwd: process.cwd(),
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
    });
    let out = "";
    help.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise((res) => help.once("close", res));
    expect(code).toBe(0);
    expect(out).toContain("Usage: npm run reminders [-- --every <interval>]");
  });

  it("exits with code 1 when Haven refuses the key", async () => {
    const refused = cron("hk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    expect(await refused.exit).toBe(1);
    expect(refused.summaries()[0]).toMatchObject({ claimed: 0, error: "UNAUTHORIZED" });
  });
});

/**
 * Statuses once they stop changing: a report call in flight when its worker was killed may still
 * commit on Haven's side (it carries up to a batch of reports), so a snapshot taken at once could
 * show claims as orphaned that are about to be reported.
 */
async function settledStatuses(seeded: { reminderId: string }[]) {
  let rows = await statuses(seeded);
  for (;;) {
    const before = JSON.stringify(rows.map((r) => [r.id, r.status]).sort());
    await new Promise((r) => setTimeout(r, 300));
    rows = await statuses(seeded);
    if (JSON.stringify(rows.map((r) => [r.id, r.status]).sort()) === before) return rows;
  }
}

describe("many workers at once", () => {
  it("2,000 due reminders, four cron processes: every reminder delivered exactly once", async () => {
    const { organizationId, key } = await clinic();
    const seeded = await seedDueReminders(h.deps, {
      organizationId,
      count: 2000,
      now: h.clock.now,
    });
    const env = {
      HAVEN_REMINDER_CONCURRENCY: "4",
      HAVEN_REMINDER_BATCH_SIZE: "25",
    };
    const workers = [cron(key, env), cron(key, env), cron(key, env), cron(key, env)];
    const summaries = await Promise.all(workers.map(finished));

    const got = messagesFor(seeded);
    const perRecipient = new Map<string, number>();
    for (const m of got)
      for (const to of m.to) perRecipient.set(to, (perRecipient.get(to) ?? 0) + 1);
    expect(got).toHaveLength(2000);
    expect(perRecipient.size).toBe(2000);
    expect([...perRecipient.values()].every((n) => n === 1)).toBe(true);
    expect([...countsById(got).values()].every((n) => n === 1)).toBe(true);
    expect(new Set(perRecipient.keys())).toEqual(new Set(seeded.map((s) => s.email)));

    expect(summaries.reduce((n, s) => n + s.claimed, 0)).toBe(2000);
    expect(summaries.reduce((n, s) => n + s.sent, 0)).toBe(2000);
    expect(summaries.every((s) => s.stale === 0 && s.failed === 0 && s.retried === 0)).toBe(true);
    const rows = await statuses(seeded);
    expect(rows.filter((r) => r.status === "sent" && r.attempts === 1)).toHaveLength(2000);
    console.log(
      `[reminders] 2000 reminders, 4 workers: per-worker sent ${summaries.map((s) => s.sent).join(", ")}; ` +
        `elapsed ${Math.max(...summaries.map((s) => s.elapsedMs))} ms`,
    );
  }, 240_000);
});

describe("a worker killed mid-batch", () => {
  it("SIGKILL: after the lease expires another worker delivers the rest; duplicates ≤ the dead worker's concurrency", async () => {
    const { organizationId, key } = await clinic();
    const seeded = await seedDueReminders(h.deps, { organizationId, count: 300, now: h.clock.now });
    const concurrency = 4;
    const batchSize = 40;
    const env = {
      HAVEN_REMINDER_CONCURRENCY: String(concurrency),
      HAVEN_REMINDER_BATCH_SIZE: String(batchSize),
      HAVEN_REMINDER_LEASE_SECONDS: "2",
    };
    // A slow relay keeps sends in flight, so the kill lands mid-batch with work in every state.
    await sink.command({ delayMs: 15 });
    const before = sink.messages.length;
    const doomed = cron(key, env);
    await sink.waitForMessages(before + 60);
    doomed.child.kill("SIGKILL");
    expect(await doomed.exit).toBe(-1);
    await sink.command({ delayMs: 0 });

    const afterKill = await settledStatuses(seeded);
    const orphaned = afterKill.filter((r) => r.status === "claimed");
    expect(orphaned.length).toBeGreaterThan(0);
    const orphanIds = orphaned.map((o) => ({ reminderId: o.id }));

    // While the lease holds, nobody may take the orphaned claims; the rest is delivered.
    const early = await finished(cron(key, env));
    const stillHeld = await statuses(orphanIds);
    expect(stillHeld.every((r) => r.status === "claimed")).toBe(true);
    expect(early.claimed).toBe(afterKill.filter((r) => r.status === "pending").length);

    // The possible duplicates: orphaned claims whose message the relay had already accepted
    // (handed over by the dead worker, never reported). At most one per send lane: a lane waits
    // for the completeMany carrying its report before it sends again (ADR 0004 decision 4).
    const wanted = new Set(orphaned.map((o) => messageIdOf(o.id)));
    const acceptedOrphans = [...countsById(messagesFor(seeded)).keys()].filter((id) =>
      wanted.has(id),
    );
    expect(acceptedOrphans.length).toBeLessThanOrEqual(concurrency);

    // Lease (2 s on Haven's clock) runs out; the next worker reclaims and delivers the rest.
    h.clock.now = new Date(h.clock.now.getTime() + 3_000);
    const rescuer = cron(key, env);
    const rescued = await finished(rescuer);
    expect(rescued.claimed).toBeGreaterThanOrEqual(orphaned.length);

    const rows = await statuses(seeded);
    expect(rows.every((r) => r.status === "sent")).toBe(true);
    const counts = countsById(messagesFor(seeded));
    expect(counts.size).toBe(300);
    const duplicated = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    expect([...counts.values()].every((n) => n <= 2)).toBe(true);
    // Exactly those accepted-but-unreported messages were sent twice, nothing else.
    expect(new Set(duplicated)).toEqual(new Set(acceptedOrphans));
    expect(duplicated.length).toBeLessThanOrEqual(concurrency);
    for (const r of rows.filter((x) => wanted.has(messageIdOf(x.id)))) {
      expect(r.attempts).toBe(2); // the dead worker's claim counted
    }
    console.log(
      `[reminders] kill test: ${orphaned.length} claims orphaned by SIGKILL, ` +
        `${duplicated.length} delivered twice (bound: concurrency ${concurrency}; batch size ${batchSize})`,
    );
  }, 120_000);

  it("SIGKILL with a completeMany held in flight: the lanes stop sending, duplicates stay ≤ the concurrency", async () => {
    const { organizationId, key } = await clinic();
    const seeded = await seedDueReminders(h.deps, { organizationId, count: 90, now: h.clock.now });
    const concurrency = 3;
    const batchSize = 30;
    const env = {
      HAVEN_REMINDER_CONCURRENCY: String(concurrency),
      HAVEN_REMINDER_BATCH_SIZE: String(batchSize),
      HAVEN_REMINDER_LEASE_SECONDS: "2",
    };
    await sink.command({ delayMs: 10 });
    const before = sink.messages.length;
    const doomed = cron(key, env);
    await sink.waitForMessages(before + 3);

    // Hold the rows of the current claim (FOR UPDATE): the worker's next completeMany blocks on
    // them, in flight, and every lane whose report it carries (or that queues behind it) must stop
    // sending. Claims are NOT blocked (the rest of the queue is free), so a worker that kept
    // sending behind an unanswered report, or claimed ahead of it, would exceed the bound.
    let release = () => {};
    const released = new Promise<void>((r) => {
      release = r;
    });
    let locked = (_n: number) => {};
    const isLocked = new Promise<number>((r) => {
      locked = r;
    });
    const holder = h.deps.db.transaction(async (tx) => {
      const held = await tx
        .select({ id: reminders.id })
        .from(reminders)
        .where(
          and(
            inArray(
              reminders.id,
              seeded.map((x) => x.reminderId),
            ),
            eq(reminders.status, "claimed"),
          ),
        )
        .for("update");
      locked(held.length);
      await released;
    });
    try {
      expect(await isLocked).toBeGreaterThan(concurrency);
      // Wait until the worker has nothing left to send: all of its claim is sent or stuck.
      let seen = -1;
      while (seen !== sink.messages.length) {
        seen = sink.messages.length;
        await new Promise((r) => setTimeout(r, 400));
      }
      doomed.child.kill("SIGKILL");
      expect(await doomed.exit).toBe(-1);
    } finally {
      release(); // never leave the row locks behind, or every later test (and close) would wait
      await holder;
    }
    await sink.command({ delayMs: 0 });
    // The call that was in flight may still commit on Haven's side: wait until the rows settle.
    const afterKill = await settledStatuses(seeded);

    const orphaned = afterKill.filter((r) => r.status === "claimed");
    const wanted = new Set(orphaned.map((o) => messageIdOf(o.id)));
    const acceptedOrphans = [...countsById(messagesFor(seeded)).keys()].filter((id) =>
      wanted.has(id),
    );
    // The scenario really had reports held in flight (accepted, unrecorded), and no more of them
    // than send lanes although Haven stalled the call for as long as the worker would send.
    expect(acceptedOrphans.length).toBeGreaterThan(0);
    expect(acceptedOrphans.length).toBeLessThanOrEqual(concurrency);
    const sentBeforeKill = afterKill.filter((r) => r.status === "sent").length;

    h.clock.now = new Date(h.clock.now.getTime() + 3_000);
    await finished(cron(key, env));
    const rows = await statuses(seeded);
    expect(rows.every((r) => r.status === "sent")).toBe(true);
    const counts = countsById(messagesFor(seeded));
    expect(counts.size).toBe(90);
    expect([...counts.values()].every((n) => n <= 2)).toBe(true);
    const duplicated = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    // A report that reached Haven (even from the call in flight at the kill) is never re-sent.
    expect(new Set(duplicated)).toEqual(new Set(acceptedOrphans));
    expect(duplicated.length).toBeLessThanOrEqual(concurrency);
    console.log(
      `[reminders] kill test, completeMany in flight: ${sentBeforeKill} reported before/at the kill, ` +
        `${orphaned.length} claims orphaned, ${duplicated.length} delivered twice ` +
        `(bound: concurrency ${concurrency}; batch size ${batchSize})`,
    );
  }, 120_000);

  it("SIGTERM: finishes sends in flight, releases the rest, exits 0; nothing is sent twice", async () => {
    const { organizationId, key } = await clinic();
    const seeded = await seedDueReminders(h.deps, { organizationId, count: 120, now: h.clock.now });
    await sink.command({ delayMs: 40 });
    const env = { HAVEN_REMINDER_CONCURRENCY: "2", HAVEN_REMINDER_BATCH_SIZE: "60" };
    const before = sink.messages.length;
    const worker = cron(key, env);
    await sink.waitForMessages(before + 5);
    worker.child.kill("SIGTERM");
    const summary = await finished(worker);
    expect(summary.released).toBeGreaterThan(0);
    expect(summary.sent + summary.released).toBe(summary.claimed);
    const afterStop = await statuses(seeded);
    expect(afterStop.filter((r) => r.status === "claimed")).toHaveLength(0);
    const released = afterStop.filter((r) => r.status === "pending");
    expect(released.length).toBeGreaterThan(0);
    expect(released.every((r) => r.attempts === 0)).toBe(true); // a release is not an attempt
    expect(messagesFor(seeded)).toHaveLength(summary.sent);

    await sink.command({ delayMs: 0 });
    await finished(cron(key)); // no clock change needed: released reminders are due at once
    const counts = countsById(messagesFor(seeded));
    expect(counts.size).toBe(120);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });
});

describe("relay failures", () => {
  it("a relay that rejects (4xx) for a while: retries with growing delay, then success", async () => {
    h.services.reminders = { maxAttempts: 5, backoffBaseSeconds: 60, backoffMaxSeconds: 3_600 };
    const { organizationId, key } = await clinic();
    const seeded = await seedDueReminders(h.deps, { organizationId, count: 4, now: h.clock.now });
    await sink.command({ mode: "reject", code: 451 });
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 2; attempt++) {
      const s = await finished(cron(key));
      expect(s).toMatchObject({ claimed: 4, sent: 0, retried: 4, failed: 0 });
      const rows = await statuses(seeded);
      expect(rows.every((r) => r.status === "pending" && r.attempts === attempt)).toBe(true);
      expect(new Set(rows.map((r) => r.lastError))).toEqual(new Set(["smtp_451_4.3.0"]));
      const delay = ((rows[0]?.nextAttemptAt.getTime() ?? 0) - h.clock.now.getTime()) / 1000;
      delays.push(delay);
      // Not due again before the backoff has passed: a run now claims nothing.
      expect(await finished(cron(key))).toMatchObject({ claimed: 0 });
      h.clock.now = new Date(h.clock.now.getTime() + delay * 1000);
    }
    expect(delays).toEqual([60, 120]);
    expect(messagesFor(seeded)).toHaveLength(0);

    await sink.command({ mode: "accept" });
    expect(await finished(cron(key))).toMatchObject({ claimed: 4, sent: 4, retried: 0 });
    const rows = await statuses(seeded);
    expect(rows.every((r) => r.status === "sent" && r.attempts === 3)).toBe(true);
    expect([...countsById(messagesFor(seeded)).values()]).toEqual([1, 1, 1, 1]);
  });

  it("a permanent reject (5xx): failed after N attempts, listed for staff, retried by staff", async () => {
    h.services.reminders = { maxAttempts: 3, backoffBaseSeconds: 30, backoffMaxSeconds: 3_600 };
    const { organizationId, key } = await clinic();
    const seeded = await seedDueReminders(h.deps, { organizationId, count: 2, now: h.clock.now });
    await sink.command({ mode: "reject", code: 550 });
    const rejectedBefore = sink.rejected.length;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const s = await finished(cron(key));
      expect(s).toMatchObject(
        attempt < 3 ? { claimed: 2, retried: 2, failed: 0 } : { claimed: 2, retried: 0, failed: 2 },
      );
      h.clock.now = new Date(h.clock.now.getTime() + 30_000 * 2 ** (attempt - 1));
    }
    expect(sink.rejected.length - rejectedBefore).toBe(6);
    const rows = await statuses(seeded);
    expect(rows.every((r) => r.status === "failed" && r.attempts === 3)).toBe(true);
    expect(rows[0]?.lastError).toBe("smtp_550_5.1.1");
    expect(await finished(cron(key))).toMatchObject({ claimed: 0 }); // dead letters stay dead

    const staff = await actorFor(h, (await makeUser(h.deps, "staff", organizationId)).userId);
    const dead = await h.caller(staff).reminders.list({ status: "failed" });
    expect(dead.items.map((i) => i.id).sort()).toEqual(seeded.map((s) => s.reminderId).sort());
    expect((await h.caller(staff).reminders.stats()).byStatus.failed).toBe(2);
    await h.caller(staff).reminders.retry({ id: seeded[0]?.reminderId as string });

    await sink.command({ mode: "accept" });
    expect(await finished(cron(key))).toMatchObject({ claimed: 1, sent: 1 });
    expect(messagesFor(seeded).map((m) => m.to[0])).toEqual([seeded[0]?.email]);
  });
});
