import { once } from "node:events";
import { createConnection, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killAll, type Sink, startSink } from "./processes.ts";

/**
 * The kill tests SIGKILL a cron while its SMTP sessions are mid-transaction, so the sink sees
 * connections reset after MAIL FROM. smtp-server reports those as an `error` event on the server;
 * a sink that let it go unhandled crashed, and every later test in cron.test.ts then waited out
 * its hook timeout on a sink that was gone (the "workers/reminders stall").
 */
let sink: Sink;
beforeAll(async () => {
  sink = await startSink();
});
afterAll(async () => {
  await sink?.close();
  await killAll();
});

/** Read until a reply line starting with `code` arrives. */
async function reply(socket: Socket, code: string): Promise<void> {
  let seen = "";
  while (!seen.split("\r\n").some((l) => l.startsWith(`${code} `))) {
    const [chunk] = (await once(socket, "data")) as [Buffer];
    seen += chunk.toString();
  }
}

describe("SMTP sink", () => {
  it("keeps serving after a client resets its connection in the middle of DATA", async () => {
    for (let i = 0; i < 3; i++) {
      const socket = createConnection(sink.port, "127.0.0.1");
      socket.on("error", () => undefined);
      await reply(socket, "220");
      socket.write("EHLO kill-test\r\n");
      await reply(socket, "250");
      socket.write("MAIL FROM:<cron@clinic.example>\r\n");
      await reply(socket, "250");
      socket.write("RCPT TO:<patient@example.org>\r\n");
      await reply(socket, "250");
      socket.write("DATA\r\n");
      await reply(socket, "354");
      socket.write("Subject: half a message\r\n\r\nThe sender dies here");
      socket.resetAndDestroy();
    }
    // Still alive: it answers a control command, and nothing half-sent was reported as accepted.
    await sink.command({ mode: "accept" });
    expect(sink.messages).toHaveLength(0);
  });
});
