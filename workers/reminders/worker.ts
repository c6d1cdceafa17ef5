import { setTimeout as sleep } from "node:timers/promises";
import { type HavenClient, isHavenError, type RouterOutputs } from "../../client-sdk/index.ts";
import type { Logger } from "../../lib/logger.ts";
import type { MailTransport } from "../../lib/mail.ts";
import { classifySendError } from "./classify.ts";
import { type ReminderTemplate, renderReminder } from "./template.ts";

/**
 * One run of the reminder cron: claim due reminders in batches through the SDK, send each through
 * the mail transport with bounded concurrency, and report every outcome right after the transport
 * answers, by group commit (`ReportGroupCommit`: at once when no `completeMany` call is in flight,
 * otherwise with the next call). Stops when a claim returns nothing, or when `signal` aborts (SIGTERM): then no new send
 * starts, sends in flight finish and are reported, and the rest of the batch is released
 * (`outcome: "released"`) so another worker can take it at once instead of after the lease.
 *
 * Duplicate bound (ADR 0004 decision 4): a send starts only while at least 20% of its claim's lease
 * is left, and is reported as soon as the relay accepts it (joining the next `completeMany` when
 * one is in flight); the next claim waits until every report of the current one has settled. A
 * process killed at any instant therefore leaves at most `min(batchSize, concurrency + the
 * reports in the in-flight call + the reports queued behind it)` ≤ `batchSize`
 * accepted-but-unreported messages, reports being retried included.
 */
export interface WorkerOptions {
  client: HavenClient;
  mail: MailTransport;
  log: Logger;
  batchSize: number;
  concurrency: number;
  /** Lease requested per claim, seconds. */
  leaseSeconds: number;
  /** BCP 47 locale for the date in the message. */
  locale: string;
  template?: ReminderTemplate;
  /** Domain of the stable per-reminder `Message-ID` (the sender's domain). */
  messageIdDomain: string;
  /** Aborted on SIGTERM. */
  signal: AbortSignal;
  /** Monotonic milliseconds (injectable); defaults to `performance.now()`. */
  monotonicMs?: () => number;
}

/** What one run did (the summary line). */
export interface RunSummary {
  /** Reminders handed to this worker. */
  claimed: number;
  /** Accepted by the mail transport. */
  sent: number;
  /** Transient failures put back with backoff. */
  retried: number;
  /** Ended as dead letters (attempt budget spent or permanent). */
  failed: number;
  /** Given back unsent (shutdown or lease running out). */
  released: number;
  /** Reports refused because the claim was superseded (lease lost, visit moved or cancelled). */
  stale: number;
  /** Due reminders the server settled as moot or undeliverable without handing them out. */
  skipped: number;
  /** Reports that could not be delivered to Haven (the lease will return those reminders). */
  reportsLost: number;
  elapsedMs: number;
  /** tRPC error code (or `network`) when the run stopped because Haven could not be reached. */
  error: string | null;
}

type Claimed = RouterOutputs["reminders"]["claimDue"]["reminders"][number];
type CompleteManyItemResult = RouterOutputs["reminders"]["completeMany"]["results"][number];
interface PendingReport {
  r: Claimed;
  body: Report;
  /** Monotonic ms after which this report is not retried any more (its lease has ended). */
  deadline: number;
}

/** Most reports per `completeMany` call (the server's bound, `COMPLETE_MANY_MAX`). */
const MAX_REPORTS_PER_CALL = 500;

/**
 * Group commit of reports without a timer: a report submitted while no call is in flight goes out
 * at once, alone; reports submitted while a call is in flight wait and all go together in the next
 * call (at most `MAX_REPORTS_PER_CALL` per call), as soon as that one returns. `flush` must never
 * throw; `submit`'s promise resolves once the call carrying the report has returned (or given up).
 */
export class ReportGroupCommit<T> {
  private queue: { item: T; done: (err?: unknown) => void }[] = [];
  private inFlight = false;

  constructor(private readonly flush: (batch: readonly T[]) => Promise<void>) {}

  /**
   * Queue `item`; resolves when the call that carried it has settled (rejects with the error if
   * `flush` broke its contract and threw; the reports after it are still sent).
   */
  submit(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, done: (err) => (err === undefined ? resolve() : reject(err)) });
      if (!this.inFlight) void this.pump();
    });
  }

  /** Reports waiting behind the call in flight (not yet sent). */
  get queued(): number {
    return this.queue.length;
  }

  private async pump(): Promise<void> {
    this.inFlight = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_REPORTS_PER_CALL);
        let failure: unknown;
        try {
          await this.flush(batch.map((b) => b.item));
        } catch (err) {
          failure = err ?? new Error("flush failed");
        }
        for (const b of batch) b.done(failure);
      }
    } finally {
      this.inFlight = false;
    }
  }
}
type Report =
  | { outcome: "sent"; providerMessageId: string }
  | { outcome: "retry" | "failed"; error: string }
  | { outcome: "released" };

/** Fraction of the lease after which no new send starts (the rest is released). */
const LEASE_SAFETY = 0.8;
/** tRPC codes that retrying a report cannot fix. */
const FINAL_CODES = new Set(["CONFLICT", "NOT_FOUND", "BAD_REQUEST", "FORBIDDEN", "UNAUTHORIZED"]);

/** `Haven <no-reply@clinic.example>` → `clinic.example`. */
export function senderDomain(from: string): string {
  const m = /@([A-Za-z0-9.-]+)>?\s*$/.exec(from.trim());
  return m?.[1] ?? "haven.invalid";
}

function errorCode(err: unknown): string {
  if (isHavenError(err)) return err.data?.code ?? "network";
  return "network";
}

/**
 * Work the queue until it is empty (or `signal` aborts). Never throws for a delivery problem; a
 * failed claim call ends the run with `summary.error` set.
 */
export async function runOnce(opts: WorkerOptions): Promise<RunSummary> {
  const clock = opts.monotonicMs ?? (() => performance.now());
  const started = clock();
  const s: RunSummary = {
    claimed: 0,
    sent: 0,
    retried: 0,
    failed: 0,
    released: 0,
    stale: 0,
    skipped: 0,
    reportsLost: 0,
    elapsedMs: 0,
    error: null,
  };

  const account = (p: PendingReport, result: CompleteManyItemResult): void => {
    const { r, body } = p;
    if (!result.ok) {
      if (result.code === "CONFLICT") {
        s.stale++;
        opts.log.warn(
          { reminderId: r.id, attempt: r.attempt, outcome: body.outcome },
          "reminder claim superseded (lease lost, visit moved or cancelled)",
        );
      } else {
        s.reportsLost++;
        opts.log.error(
          { reminderId: r.id, outcome: body.outcome, code: result.code },
          "could not report reminder outcome; the lease will return it to the queue",
        );
      }
      return;
    }
    if (body.outcome === "released") s.released++;
    else if (result.status === "failed") s.failed++;
    else if (result.status === "pending") s.retried++;
    opts.log.debug(
      {
        reminderId: r.id,
        attempt: r.attempt,
        outcome: body.outcome,
        status: result.status,
        code: "error" in body ? body.error : undefined,
      },
      "reminder reported",
    );
  };

  const lose = (batch: readonly PendingReport[], code: string): void => {
    for (const { r, body } of batch) {
      s.reportsLost++;
      opts.log.error(
        { reminderId: r.id, outcome: body.outcome, code },
        "could not report reminder outcome; the lease will return it to the queue",
      );
    }
  };

  /**
   * One `completeMany` call for `batch`, retried as a single `complete` was: up to 4 retries with
   * 100 ms · 2^n backoff, never for a code retrying cannot fix, and a report is given up once its
   * lease has ended. Never throws.
   */
  const sendBatch = async (batch: readonly PendingReport[]): Promise<void> => {
    let pending = batch;
    for (let attempt = 0; ; attempt++) {
      try {
        const { results } = await opts.client.reminders.completeMany.mutate({
          items: pending.map(({ r, body }) => ({ id: r.id, version: r.version, ...body })),
        });
        if (
          results.length !== pending.length ||
          results.some((x, i) => x.id !== pending[i]?.r.id)
        ) {
          lose(pending, "bad_response"); // cannot happen with a conforming server
          return;
        }
        for (const [i, result] of results.entries()) account(pending[i] as PendingReport, result);
        return;
      } catch (err) {
        const code = errorCode(err);
        if (FINAL_CODES.has(code) || attempt >= 4) {
          lose(pending, code);
          return;
        }
        const now = clock();
        lose(
          pending.filter((p) => now > p.deadline),
          code,
        );
        pending = pending.filter((p) => now <= p.deadline);
        if (pending.length === 0) return;
        await sleep(100 * 2 ** attempt);
      }
    }
  };

  const reports = new ReportGroupCommit<PendingReport>(sendBatch);
  let inBatch: Promise<void>[] = [];
  /**
   * Report one outcome through the group commit and wait until the call carrying it has settled.
   * A send lane awaits this before it takes its next reminder, so each lane holds at most one
   * message the relay accepted and Haven has not recorded: a worker killed at any instant leaves at
   * most `concurrency` such messages (ADR 0004 decision 4), while the reports of all lanes still
   * share one `completeMany` call.
   */
  const report = (r: Claimed, body: Report, deadline: number): Promise<void> => {
    const settled = reports.submit({ r, body, deadline });
    inBatch.push(settled);
    return settled;
  };

  const handle = async (r: Claimed, sendDeadline: number, leaseEnd: number): Promise<void> => {
    if (opts.signal.aborted || clock() > sendDeadline) {
      await report(r, { outcome: "released" }, leaseEnd);
      return;
    }
    let message: ReturnType<typeof renderReminder>;
    try {
      message = renderReminder(
        {
          firstName: r.recipient.firstName,
          clinicName: r.clinic.name,
          timeZone: r.clinic.timezone,
          startsAt: r.appointment.startsAt,
          localStart: r.appointment.localStart,
        },
        opts.locale,
        opts.template,
      );
    } catch (err) {
      // e.g. a time zone this Node.js does not know: no retry can fix it; staff see a dead letter.
      opts.log.error({ reminderId: r.id, err }, "reminder could not be rendered");
      await report(r, { outcome: "failed", error: "render_error" }, leaseEnd);
      return;
    }
    let body: Report;
    try {
      const sent = await opts.mail.send({
        to: r.recipient.address,
        subject: message.subject,
        text: message.text,
        html: message.html,
        kind: "reminder",
        messageId: `<reminder.${r.id}@${opts.messageIdDomain}>`,
      });
      s.sent++;
      body = { outcome: "sent", providerMessageId: sent.messageId.slice(0, 300) || "unknown" };
    } catch (err) {
      const c = classifySendError(err);
      opts.log.warn(
        { reminderId: r.id, attempt: r.attempt, code: c.code, outcome: c.outcome },
        "reminder delivery failed",
      );
      body = { outcome: c.outcome, error: c.code };
    }
    await report(r, body, leaseEnd);
  };

  try {
    while (!opts.signal.aborted) {
      const batch = await opts.client.reminders.claimDue.mutate({
        limit: opts.batchSize,
        leaseSeconds: opts.leaseSeconds,
        channels: ["email"],
      });
      const claimedAt = clock();
      s.claimed += batch.reminders.length;
      s.skipped += batch.skipped;
      if (batch.reminders.length === 0 && batch.skipped === 0) break;
      const leaseMs = batch.leaseSeconds * 1000;
      const sendDeadline = claimedAt + leaseMs * LEASE_SAFETY;
      const leaseEnd = claimedAt + leaseMs;
      let next = 0;
      const lanes = Array.from(
        { length: Math.min(opts.concurrency, batch.reminders.length) },
        async () => {
          for (let r = batch.reminders[next++]; r; r = batch.reminders[next++]) {
            await handle(r, sendDeadline, leaseEnd);
          }
        },
      );
      await Promise.all(lanes);
      // Every report of this claim is settled before the next claim (each lane already waited for
      // its own; this also covers the released ones).
      const settled = inBatch;
      inBatch = [];
      await Promise.all(settled);
    }
  } catch (err) {
    s.error = errorCode(err);
    opts.log.error({ code: s.error, err }, "claiming reminders failed");
  }
  await Promise.all(inBatch);
  s.elapsedMs = Math.round(clock() - started);
  return s;
}
