import { type ChildProcess, spawn } from "node:child_process";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/**
 * Child processes for the reminder tests: the SMTP sink and the real cron entry point
 * (`workers/reminders/cli.ts`, what `npm run reminders` runs). Every process started here is
 * tracked and killed by {@link killAll}, so a failing test leaves nothing running.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const SINK = resolve(ROOT, "workers/reminders/test/smtp-sink.ts");
const CRON = resolve(ROOT, "workers/reminders/cli.ts");
const running = new Set<ChildProcess>();

function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ["PATH", "HOME", "TMPDIR", "LANG", "TZ"]) {
    if (process.env[k] !== undefined) env[k] = process.env[k];
  }
  return env;
}

function track(child: ChildProcess): Promise<number | null> {
  running.add(child);
  return new Promise((res) => {
    // "close" fires after the process exited AND its stdio ended, so every line has been read.
    child.once("close", (code, signal) => {
      running.delete(child);
      res(code ?? (signal ? -1 : null));
    });
  });
}

/** SIGKILL every child still running (afterAll). */
export async function killAll(): Promise<void> {
  const waits = [...running].map((c) => new Promise<void>((res) => c.once("close", () => res())));
  for (const c of running) c.kill("SIGKILL");
  await Promise.all(waits);
}

export interface SinkMessage {
  seq: number;
  messageId: string | null;
  to: string[];
  subject: string | null;
  text: string | null;
  html: string | null;
  /** Wall-clock ms when the sink accepted it. */
  at: number;
}

export interface Sink {
  port: number;
  url: string;
  messages: SinkMessage[];
  rejected: { code: number; to: string[] }[];
  /** Send a control command and wait for its acknowledgement. */
  command(cmd: { mode?: "accept" | "reject"; code?: number; delayMs?: number }): Promise<void>;
  /** Resolve once at least `n` messages were accepted (rejects after `timeoutMs`). */
  waitForMessages(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Start the SMTP sink on a free loopback port. */
export async function startSink(): Promise<Sink> {
  const child = spawn(process.execPath, ["--import", "tsx", SINK], {
    cwd: ROOT,
    env: baseEnv(),
    stdio: ["pipe", "pipe", "pipe"],
  });
  const exited = track(child);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const messages: SinkMessage[] = [];
  const rejected: { code: number; to: string[] }[] = [];
  const acks = new Map<number, () => void>();
  const waiters = new Set<() => void>();
  let nextId = 1;
  const port = await new Promise<number>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`SMTP sink did not start: ${stderr}`)), 30_000);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const e = JSON.parse(line) as { event: string } & Record<string, unknown>;
      if (e.event === "ready") {
        clearTimeout(t);
        res(e.port as number);
      } else if (e.event === "message") {
        messages.push(e as unknown as SinkMessage);
        for (const w of waiters) w();
      } else if (e.event === "rejected") {
        rejected.push({ code: e.code as number, to: e.to as string[] });
      } else if (e.event === "ack") {
        acks.get(e.id as number)?.();
        acks.delete(e.id as number);
      }
    });
    void exited.then(() => rej(new Error(`SMTP sink exited: ${stderr}`)));
  });
  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    messages,
    rejected,
    // Fails at once, with the sink's stderr, if the sink has died (instead of waiting forever).
    command: (cmd) =>
      new Promise<void>((res, rej) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          rej(new Error(`SMTP sink is not running (exit ${child.exitCode}): ${stderr}`));
          return;
        }
        const id = nextId++;
        acks.set(id, res);
        void exited.then((code) => {
          if (acks.delete(id)) rej(new Error(`SMTP sink exited (${code}): ${stderr}`));
        });
        child.stdin?.write(`${JSON.stringify({ id, ...cmd })}\n`);
      }),
    waitForMessages: (n, timeoutMs = 60_000) =>
      new Promise<void>((res, rej) => {
        if (messages.length >= n) return res();
        const t = setTimeout(() => {
          waiters.delete(check);
          rej(new Error(`sink has ${messages.length} messages, waited for ${n}`));
        }, timeoutMs);
        const check = () => {
          if (messages.length >= n) {
            clearTimeout(t);
            waiters.delete(check);
            res();
          }
        };
        waiters.add(check);
      }),
    close: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** The summary line a cron run logs. */
export interface CronSummary {
  run: number;
  claimed: number;
  sent: number;
  retried: number;
  failed: number;
  released: number;
  stale: number;
  skipped: number;
  reportsLost: number;
  elapsedMs: number;
  error: string | null;
}

export interface CronProcess {
  child: ChildProcess;
  /** Every JSON log line so far. */
  lines: Record<string, unknown>[];
  stderr(): string;
  /** Resolves with the exit code (-1 when killed by a signal). */
  exit: Promise<number | null>;
  summaries(): CronSummary[];
}

/** Spawn the real cron entry point with the given environment and arguments. */
export function spawnCron(o: {
  url: string;
  apiKey: string;
  smtpUrl?: string;
  env?: Record<string, string>;
  args?: string[];
}): CronProcess {
  const child = spawn(process.execPath, ["--import", "tsx", CRON, ...(o.args ?? [])], {
    cwd: ROOT,
    env: {
      ...baseEnv(),
      HAVEN_URL: o.url,
      HAVEN_API_KEY: o.apiKey,
      ...(o.smtpUrl ? { HAVEN_SMTP_URL: o.smtpUrl } : {}),
      LOG_LEVEL: "info",
      ...o.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exit = track(child);
  const lines: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      lines.push({ raw: line });
    }
  });
  return {
    child,
    lines,
    stderr: () => stderr,
    exit,
    summaries: () =>
      lines.filter((l) => l.event === "reminders.summary") as unknown as CronSummary[],
  };
}
