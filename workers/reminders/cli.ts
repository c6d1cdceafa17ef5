import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { createHavenClient } from "../../client-sdk/index.ts";
import { createLogger } from "../../lib/logger.ts";
import { createMailTransport } from "../../lib/mail.ts";
import { CronConfigError, loadCronConfig, parseInterval } from "./config.ts";
import { loadTemplate, type ReminderTemplate } from "./template.ts";
import { type RunSummary, runOnce, senderDomain } from "./worker.ts";

/**
 * The appointment-reminder cron (`npm run reminders`): a separate process that talks to Haven only
 * through the client SDK with a `service` API key.
 *
 *   npm run reminders                   one run: send everything due, print a summary, exit
 *   npm run reminders -- --every 60s    loop: a run every 60 s until SIGTERM/SIGINT
 *
 * Exit codes: 0 done (including a graceful shutdown), 1 Haven refused the key or could not be
 * reached (one-shot), 2 bad configuration or arguments. Logs are JSON lines with ids and counts,
 * never names, addresses or message text.
 */
const USAGE = `Usage: npm run reminders [-- --every <interval>]

  --every <interval>   run repeatedly (60s, 5m, 1h); without it, run once and exit
  --help               show this text

Environment: HAVEN_URL, HAVEN_API_KEY (required); HAVEN_SMTP_URL, HAVEN_MAIL_FROM,
HAVEN_REMINDER_CONCURRENCY, HAVEN_REMINDER_BATCH_SIZE, HAVEN_REMINDER_LEASE_SECONDS,
HAVEN_REMINDER_LOCALE, HAVEN_REMINDER_TEMPLATE, LOG_LEVEL (see README "Reminder cron").`;

async function main(argv: string[]): Promise<number> {
  let every: number | null = null;
  let config: ReturnType<typeof loadCronConfig>;
  let template: ReminderTemplate | undefined;
  try {
    const { values } = parseArgs({
      args: argv,
      options: { every: { type: "string" }, help: { type: "boolean" } },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    if (values.every !== undefined) every = parseInterval(values.every);
    config = loadCronConfig(process.env);
    if (config.HAVEN_REMINDER_TEMPLATE) template = loadTemplate(config.HAVEN_REMINDER_TEMPLATE);
  } catch (err) {
    // Config, template and argument errors name the problem, never a value (the key stays unseen).
    console.error(err instanceof Error ? err.message : String(err));
    if (!(err instanceof CronConfigError) || err.message.startsWith("--every")) {
      console.error(`\n${USAGE}`);
    }
    return 2;
  }

  const log = createLogger(config.LOG_LEVEL).child({
    component: "reminders-cron",
    worker: `${hostname()}:${process.pid}`,
  });
  const client = createHavenClient({ url: config.HAVEN_URL, token: config.HAVEN_API_KEY });
  const mail = createMailTransport(config, log);
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (name: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal: name }, "second signal: exiting without waiting for in-flight reminders");
      process.exit(130);
    }
    log.info({ signal: name }, "shutting down: finishing sends in flight, releasing the rest");
    controller.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  log.info(
    {
      mode: every === null ? "once" : "loop",
      everyMs: every,
      transport: mail.kind,
      concurrency: config.HAVEN_REMINDER_CONCURRENCY,
      batchSize: config.HAVEN_REMINDER_BATCH_SIZE,
      leaseSeconds: config.HAVEN_REMINDER_LEASE_SECONDS,
    },
    "reminder cron started",
  );
  const logSummary = (run: number, summary: RunSummary) => {
    const { error, ...counts } = summary;
    log.info({ event: "reminders.summary", run, ...counts, error }, "reminder run");
  };

  let exitCode = 0;
  try {
    for (let run = 1; ; run++) {
      const summary = await runOnce({
        client,
        mail,
        log,
        batchSize: config.HAVEN_REMINDER_BATCH_SIZE,
        concurrency: config.HAVEN_REMINDER_CONCURRENCY,
        leaseSeconds: config.HAVEN_REMINDER_LEASE_SECONDS,
        locale: config.HAVEN_REMINDER_LOCALE,
        ...(template ? { template } : {}),
        messageIdDomain: senderDomain(config.HAVEN_MAIL_FROM),
        signal: controller.signal,
      });
      logSummary(run, summary);
      const fatal = summary.error === "UNAUTHORIZED" || summary.error === "FORBIDDEN";
      if (fatal || (every === null && summary.error !== null)) {
        exitCode = 1;
        break;
      }
      if (every === null || controller.signal.aborted) break;
      try {
        await sleep(every, undefined, { signal: controller.signal });
      } catch {
        break; // aborted while waiting
      }
    }
  } finally {
    await mail.close();
  }
  log.info({ exitCode }, "reminder cron stopped");
  return exitCode;
}

// Exit explicitly: idle keep-alive sockets of the HTTP client must not hold a one-shot run open.
process.exit(await main(process.argv.slice(2)));
