import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LogSink } from "../server/test/harness.ts";
import { createLogger } from "./logger.ts";
import { createMailTransport, LogMailTransport, SmtpMailTransport } from "./mail.ts";

/**
 * The mail transport: SMTP through nodemailer's pool against a minimal SMTP server on 127.0.0.1:0
 * (it speaks just enough RFC 5321 to accept a message), and the default log transport.
 */
let server: Server;
let port: number;
const received: string[] = [];
const sockets = new Set<Socket>();

beforeAll(async () => {
  server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    let data = false;
    let buffer = "";
    let message = "";
    socket.write("220 test ESMTP\r\n");
    socket.on("data", (chunk) => {
      buffer += chunk.toString("utf8");
      let i = buffer.indexOf("\r\n");
      while (i >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        if (data) {
          if (line === ".") {
            data = false;
            received.push(message);
            message = "";
            socket.write("250 2.0.0 queued as TEST1\r\n");
          } else message += `${line}\n`;
        } else if (/^(EHLO|HELO)/i.test(line)) socket.write("250-test\r\n250 8BITMIME\r\n");
        else if (/^DATA/i.test(line)) {
          data = true;
          socket.write("354 go ahead\r\n");
        } else if (/^QUIT/i.test(line)) {
          socket.write("221 bye\r\n");
          socket.end();
        } else socket.write("250 ok\r\n");
        i = buffer.indexOf("\r\n");
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  port = typeof addr === "object" && addr ? addr.port : 0;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

describe("mail transports", () => {
  it("SMTP (HAVEN_SMTP_URL) delivers through a pooled connection and logs only the message id", async () => {
    const sink = new LogSink();
    const mail = createMailTransport(
      {
        HAVEN_SMTP_URL: `smtp://127.0.0.1:${port}`,
        HAVEN_MAIL_FROM: "Haven <no-reply@haven.test>",
        HAVEN_PUBLIC_URL: "https://portal.clinic.test/",
      },
      createLogger("info", sink),
    );
    expect(mail).toBeInstanceOf(SmtpMailTransport);
    expect(mail.linkBase).toBe("https://portal.clinic.test");
    expect(mail.staffLinkBase).toBe("https://portal.clinic.test/admin");
    expect(
      createMailTransport(
        {
          HAVEN_MAIL_FROM: "Haven <no-reply@haven.test>",
          HAVEN_PANEL_URL: "https://staff.clinic.test/panel/",
        },
        createLogger("info", sink),
      ).staffLinkBase,
    ).toBe("https://staff.clinic.test/panel");
    const sent = await mail.send({
      kind: "password_reset",
      to: "patient.person@example.test",
      subject: "Reset your Haven password",
      text: "code XYZ-123",
    });
    mail.enqueue({
      kind: "invitation",
      to: "other@example.test",
      subject: "Invite",
      text: "hello",
    });
    await mail.close();
    expect(sent.messageId).toMatch(/@/);
    expect(received).toHaveLength(2);
    expect(received[0]).toContain("To: patient.person@example.test");
    expect(received[0]).toContain("code XYZ-123");
    expect(sink.text()).toContain("mail sent");
    expect(sink.text()).not.toContain("patient.person");
    expect(sink.text()).not.toContain("XYZ-123");
  });

  it("a failed background send is logged without the address; the default is the log transport", async () => {
    const sink = new LogSink();
    const mail = createMailTransport(
      { HAVEN_SMTP_URL: "smtp://127.0.0.1:1", HAVEN_MAIL_FROM: "Haven <no-reply@haven.test>" },
      createLogger("info", sink),
    );
    mail.enqueue({ kind: "reminder", to: "someone@example.test", subject: "s", text: "t" });
    await mail.close();
    expect(sink.text()).toContain("mail delivery failed");
    expect(sink.text()).not.toContain("someone@example.test");
    expect(
      createMailTransport({ HAVEN_MAIL_FROM: "x <x@y.z>" }, createLogger("silent")),
    ).toBeInstanceOf(LogMailTransport);
  });
});
