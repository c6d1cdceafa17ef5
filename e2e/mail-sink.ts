import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";

/** Where the e2e run's captured e-mails go, one JSON object a line (gitignored artifacts). */
export const MAIL_FILE = join(import.meta.dirname, "artifacts", "mail.jsonl");

/** One captured message. */
export interface CapturedMail {
  to: string[];
  subject: string | null;
  text: string | null;
  at: number;
}

/**
 * A real SMTP server (the `smtp-server` package) on a loopback port for the e2e Haven: the server
 * sends through its ordinary SMTP transport (`HAVEN_SMTP_URL`), and every accepted message is
 * appended to {@link MAIL_FILE} so specs (other processes) read what an invitee would receive.
 * @returns its `smtp://` URL and `close()`
 */
export async function startMailSink(
  port: number,
): Promise<{ url: string; close(): Promise<void> }> {
  writeFileSync(MAIL_FILE, "", { mode: 0o600 });
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["AUTH", "STARTTLS"],
    logger: false,
    size: 1_048_576,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        simpleParser(Buffer.concat(chunks)).then(
          (parsed) => {
            const mail: CapturedMail = {
              to: session.envelope.rcptTo.map((r) => r.address),
              subject: parsed.subject ?? null,
              text: parsed.text ?? null,
              at: Date.now(),
            };
            appendFileSync(MAIL_FILE, `${JSON.stringify(mail)}\n`);
            callback(null, "queued");
          },
          (err: Error) => callback(err),
        );
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  // smtp-server reports a client that resets mid-session as an `error` on the server; without a
  // listener that would crash the process hosting the sink. A relay shrugs it off.
  server.on("error", () => undefined);
  return {
    url: `smtp://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The newest captured message to `to` (waits up to `timeoutMs` for it to arrive).
 * @throws when none arrives in time
 */
export async function mailTo(to: string, timeoutMs = 15_000): Promise<CapturedMail> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(MAIL_FILE)) {
      const found = readFileSync(MAIL_FILE, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as CapturedMail)
        .filter((m) => m.to.includes(to))
        .at(-1);
      if (found) return found;
    }
    if (Date.now() > deadline) throw new Error(`no e-mail to ${to} within ${timeoutMs} ms`);
    await sleep(200);
  }
}
