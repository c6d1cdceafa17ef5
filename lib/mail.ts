import { randomUUID } from "node:crypto";
import nodemailer, { type Transporter } from "nodemailer";
import type { Logger } from "./logger.ts";

/**
 * Outgoing mail for Haven (password reset, invitations, appointment reminders). One interface, three
 * transports: SMTP (nodemailer connection pool from `HAVEN_SMTP_URL`), a log transport (the default:
 * logs the message id, kind and recipient count — never addresses, subjects or bodies) and an
 * in-memory transport for tests.
 */
export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  /** Optional HTML alternative of `text` (sent as multipart/alternative). */
  html?: string;
  /**
   * Optional fixed `Message-ID` (`<local@domain>`). Reminders use one per reminder, so a copy sent
   * twice after a crash carries the same id and mail clients can collapse it.
   */
  messageId?: string;
  /** What the message is (`password_reset`, `invitation`, `reminder`): logged instead of content. */
  kind: string;
}

export interface SentMail {
  messageId: string;
}

export interface MailTransport {
  readonly kind: "smtp" | "log" | "memory";
  /** Base URL for links inside e-mails (`HAVEN_PUBLIC_URL`), without a trailing slash. */
  readonly linkBase: string;
  /**
   * Base URL of the staff admin panel for workforce links (`HAVEN_PANEL_URL`, default
   * `linkBase` + `/admin`), without a trailing slash: a clinician's invitation opens the panel,
   * a patient's opens the portal.
   */
  readonly staffLinkBase: string;
  /**
   * Send one message and wait for the transport to accept it.
   * @throws the transport's error (SMTP refusal, connection failure)
   */
  send(message: MailMessage): Promise<SentMail>;
  /**
   * Send without waiting (the caller's response must not reveal whether mail went out, e.g. a
   * password reset for an unknown address); failures are logged by id. {@link close} waits for it.
   */
  enqueue(message: MailMessage): void;
  /** Wait for queued messages, then release connections. */
  close(): Promise<void>;
}

const DEFAULT_LINK_BASE = "http://127.0.0.1:3000";

abstract class BaseTransport implements MailTransport {
  abstract readonly kind: "smtp" | "log" | "memory";
  readonly linkBase: string;
  readonly staffLinkBase: string;
  readonly #pending = new Set<Promise<unknown>>();
  constructor(
    protected readonly log: Logger,
    linkBase: string = DEFAULT_LINK_BASE,
    staffLinkBase?: string,
  ) {
    this.linkBase = linkBase.replace(/\/+$/, "");
    this.staffLinkBase = (staffLinkBase ?? `${this.linkBase}/admin`).replace(/\/+$/, "");
  }

  abstract send(message: MailMessage): Promise<SentMail>;

  enqueue(message: MailMessage): void {
    const p: Promise<unknown> = this.send(message)
      .catch((err: unknown) => {
        this.log.error({ err, mailKind: message.kind }, "mail delivery failed");
      })
      .finally(() => this.#pending.delete(p));
    this.#pending.add(p);
  }

  /** Settle every queued send. */
  protected async drain(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  async close(): Promise<void> {
    await this.drain();
  }
}

/** Default transport: records that a message would be sent (id, kind, recipient count) and nothing else. */
export class LogMailTransport extends BaseTransport {
  readonly kind = "log" as const;
  async send(message: MailMessage): Promise<SentMail> {
    const messageId = message.messageId ?? `<${randomUUID()}@haven.log>`;
    this.log.info({ messageId, mailKind: message.kind, recipients: 1 }, "mail (log transport)");
    return { messageId };
  }
}

/** Keeps messages in memory (tests; never in production). */
export class MemoryMailTransport extends BaseTransport {
  readonly kind = "memory" as const;
  readonly messages: (MailMessage & { messageId: string })[] = [];
  async send(message: MailMessage): Promise<SentMail> {
    const messageId = message.messageId ?? `<${randomUUID()}@haven.memory>`;
    this.messages.push({ ...message, messageId });
    return { messageId };
  }
}

/** SMTP through a nodemailer connection pool. Logs message ids only. */
export class SmtpMailTransport extends BaseTransport {
  readonly kind = "smtp" as const;
  readonly #transporter: Transporter;
  readonly #from: string;
  constructor(url: string, from: string, log: Logger, linkBase?: string, staffLinkBase?: string) {
    super(log, linkBase, staffLinkBase);
    this.#from = from;
    this.#transporter = nodemailer.createTransport({ pool: true, url, maxConnections: 5 });
  }
  async send(message: MailMessage): Promise<SentMail> {
    const info = await this.#transporter.sendMail({
      from: this.#from,
      to: message.to,
      subject: message.subject,
      text: message.text,
      ...(message.html !== undefined ? { html: message.html } : {}),
      ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
    });
    const messageId = String(info.messageId ?? "");
    this.log.info({ messageId, mailKind: message.kind, recipients: 1 }, "mail sent");
    return { messageId };
  }
  override async close(): Promise<void> {
    await this.drain();
    this.#transporter.close();
  }
}

/**
 * Build the configured transport: SMTP when `HAVEN_SMTP_URL` is set, else the log transport.
 */
export function createMailTransport(
  config: {
    HAVEN_SMTP_URL?: string | undefined;
    HAVEN_MAIL_FROM: string;
    HAVEN_PUBLIC_URL?: string | undefined;
    HAVEN_PANEL_URL?: string | undefined;
  },
  log: Logger,
): MailTransport {
  return config.HAVEN_SMTP_URL
    ? new SmtpMailTransport(
        config.HAVEN_SMTP_URL,
        config.HAVEN_MAIL_FROM,
        log,
        config.HAVEN_PUBLIC_URL,
        config.HAVEN_PANEL_URL,
      )
    : new LogMailTransport(log, config.HAVEN_PUBLIC_URL, config.HAVEN_PANEL_URL);
}
