import { hostname } from "node:os";
import { eq, lt, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { serverInstances } from "../../db/schema/index.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import { phiKeyFingerprints } from "./fingerprint.ts";
import type { Keyring } from "./keyring.ts";

/**
 * Which PHI keys the live servers hold, through the database so it works across
 * machines on PostgreSQL. Each server upserts a `server_instances` row every `intervalMs` with
 * `expires_at = now() + 3 × interval` (database clock, so machine clock skew does not matter) and
 * deletes it on shutdown; a killed server's row simply expires.
 */

/** A live server as `keys rotate` names it. */
export interface LiveServer {
  id: string;
  hostname: string;
  pid: number;
  url: string | null;
  activeKeyId: string;
  keyFingerprints: Record<string, string>;
  /** Seconds since its last heartbeat (database clock). */
  secondsSinceHeartbeat: number;
}

/** Every server whose heartbeat has not expired, oldest first. */
export async function liveServers(db: Executor): Promise<LiveServer[]> {
  const rows = await db
    .select({
      id: serverInstances.id,
      hostname: serverInstances.hostname,
      pid: serverInstances.pid,
      url: serverInstances.url,
      activeKeyId: serverInstances.activeKeyId,
      keyFingerprints: serverInstances.keyFingerprints,
      age: sql<number>`extract(epoch from now() - ${serverInstances.heartbeatAt})::float8`,
    })
    .from(serverInstances)
    .where(sql`${serverInstances.expiresAt} > now()`)
    .orderBy(serverInstances.startedAt);
  return rows.map(({ age, ...r }) => ({ ...r, secondsSinceHeartbeat: Number(age) }));
}

/**
 * Live servers that do not hold `keyId` with the same material as `keyring` (missing id, or the
 * same id with another key).
 */
export async function liveServersLacking(
  db: Executor,
  keyring: Keyring,
  keyId: string = keyring.activeKeyId,
): Promise<LiveServer[]> {
  const mine = phiKeyFingerprints(keyring)[keyId];
  return (await liveServers(db)).filter((s) => s.keyFingerprints[keyId] !== mine);
}

/** `host pid 123 (http://…, heartbeat 2 s ago)` for messages. */
export function describeServer(s: LiveServer): string {
  const where = s.url ? `${s.url}, ` : "";
  return `${s.hostname} pid ${s.pid} (${where}heartbeat ${Math.round(s.secondsSinceHeartbeat)} s ago)`;
}

/**
 * Servers whose active key this keyring cannot decrypt with: what they write now, this process
 * could not read. Used by readiness.
 */
export function serversWritingUnreadable(
  servers: LiveServer[],
  keyring: Keyring,
  selfId: string,
): LiveServer[] {
  const mine = phiKeyFingerprints(keyring);
  return servers.filter(
    (s) => s.id !== selfId && s.keyFingerprints[s.activeKeyId] !== mine[s.activeKeyId],
  );
}

export interface HeartbeatOptions {
  /** Heartbeat period in ms (default 5000). */
  intervalMs?: number;
  /** Called after each beat with the live servers (readiness uses it). */
  onBeat?: (servers: LiveServer[]) => void;
  /** Called when a beat fails (database down); the next beat retries. */
  onError?: (err: unknown) => void;
}

/** This process's row in `server_instances`, kept alive by a timer. */
export class InstanceHeartbeat {
  readonly id = uuidv7();
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #url: string | null = null;
  #beating: Promise<void> | undefined;
  readonly #startedAt = new Date();

  constructor(
    private readonly db: Executor,
    private readonly keyring: Keyring,
    private readonly options: HeartbeatOptions = {},
  ) {
    this.#intervalMs = options.intervalMs ?? 5000;
  }

  /** Write the row now (and drop rows expired for more than a day). @throws the driver's error */
  async register(): Promise<void> {
    await this.db
      .delete(serverInstances)
      .where(lt(serverInstances.expiresAt, sql`now() - interval '1 day'`));
    await this.beat();
  }

  /** Record the URL the server listens on (next beats carry it). */
  async setUrl(url: string): Promise<void> {
    this.#url = url;
    await this.beat();
  }

  /** Upsert the row with a fresh expiry; then report the live servers to `onBeat`. */
  async beat(): Promise<void> {
    const expires = sql`now() + make_interval(secs => ${(3 * this.#intervalMs) / 1000})`;
    const values = {
      id: this.id,
      hostname: hostname(),
      pid: process.pid,
      url: this.#url,
      activeKeyId: this.keyring.activeKeyId,
      keyFingerprints: phiKeyFingerprints(this.keyring),
      startedAt: this.#startedAt,
      heartbeatAt: sql`now()`,
      expiresAt: expires,
    };
    await this.db
      .insert(serverInstances)
      .values(values)
      .onConflictDoUpdate({
        target: serverInstances.id,
        set: { url: values.url, heartbeatAt: sql`now()`, expiresAt: expires },
      });
    this.options.onBeat?.(await liveServers(this.db));
  }

  /** Beat every interval until {@link stop}. The timer never keeps the process alive. */
  start(): void {
    this.#timer = setInterval(() => {
      if (this.#beating) return;
      this.#beating = this.beat()
        .catch((err: unknown) => this.options.onError?.(err))
        .finally(() => {
          this.#beating = undefined;
        });
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Stop beating and delete the row (best effort: a row left behind expires). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#beating;
    await this.db
      .delete(serverInstances)
      .where(eq(serverInstances.id, this.id))
      .catch(() => {});
  }
}
