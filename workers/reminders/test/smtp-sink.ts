import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";

/**
 * A real SMTP server for the reminder tests (the `smtp-server` package), run as its own process on
 * a loopback port. It reports on stdout as JSON lines:
 *   {"event":"ready","port":N}
 *   {"event":"message","seq":n,"messageId":…,"to":[…],"subject":…,"text":…,"html":…,"at":ms}
 *   {"event":"rejected","code":451,"to":[…]}
 *   {"event":"ack","id":…}                      after each control command
 *   {"event":"connection-error","code":"ECONNRESET"}   a client went away mid-session
 * and takes control commands on stdin, one JSON object a line:
 *   {"id":1,"mode":"accept"} | {"id":2,"mode":"reject","code":451} | {"id":3,"delayMs":50}
 * A message is reported BEFORE the 250 reply goes out: once reported, the server has accepted it
 * even if the client dies before reading the reply (what a real relay does).
 */
type Mode = { kind: "accept" } | { kind: "reject"; code: number };
let mode: Mode = { kind: "accept" };
let delayMs = 0;
let seq = 0;

const emit = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ["AUTH", "STARTTLS"],
  logger: false,
  size: 1_048_576,
  maxClients: 200,
  onData(stream, session, callback) {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", async () => {
      const to = session.envelope.rcptTo.map((r) => r.address);
      if (delayMs > 0) await sleep(delayMs);
      if (mode.kind === "reject") {
        emit({ event: "rejected", code: mode.code, to });
        const err = new Error(
          mode.code >= 500
            ? `5.1.1 <${to[0] ?? ""}>: Recipient address rejected`
            : "4.3.0 Temporary local problem, try again later",
        ) as Error & { responseCode: number };
        err.responseCode = mode.code;
        callback(err);
        return;
      }
      const parsed = await simpleParser(Buffer.concat(chunks));
      emit({
        event: "message",
        seq: ++seq,
        messageId: parsed.messageId ?? null,
        to,
        subject: parsed.subject ?? null,
        text: parsed.text ?? null,
        html: typeof parsed.html === "string" ? parsed.html : null,
        at: Date.now(),
      });
      callback(null, `Message queued as sink-${seq}`);
    });
  },
});

// A client that dies mid-session (the kill tests SIGKILL a cron with sends in flight) resets its
// socket; smtp-server reports that as an `error` event on the server, which would crash this
// process without a listener, leaving every later test waiting on a sink that is gone. A real
// relay logs it and keeps serving.
server.on("error", (err: Error & { code?: string }) => {
  emit({ event: "connection-error", code: err.code ?? err.name });
});

createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line) as { id?: number; mode?: string; code?: number; delayMs?: number };
  if (cmd.mode === "accept") mode = { kind: "accept" };
  if (cmd.mode === "reject") mode = { kind: "reject", code: cmd.code ?? 451 };
  if (typeof cmd.delayMs === "number") delayMs = cmd.delayMs;
  emit({ event: "ack", id: cmd.id ?? null });
});

server.listen(0, "127.0.0.1", () => {
  const address = server.server.address();
  emit({ event: "ready", port: typeof address === "object" && address ? address.port : 0 });
});

const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
