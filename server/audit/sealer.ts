import type { Database } from "../../db/client.ts";
import type { Logger } from "../../lib/logger.ts";
import { type SealResult, sealAuditChain } from "./chain.ts";

/**
 * The in-process background sealer: seals the audit chain on an interval (first run a full scan,
 * so events written while no server ran are covered) and on demand. Across instances only one
 * seals at a time (advisory lock); the others skip. Each run that appends links logs the new head
 * `{ seq, hash }` at info level — shipped off-box with the logs, these lines are the anchors that
 * expose a rewritten or truncated chain (`npm run audit -- verify --anchor seq:hash`).
 */
export class AuditSealer {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<SealResult | null> | undefined;
  #stopped = false;
  #fullScanDone = false;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  /** Start the interval (unref'd: never keeps the process alive). A non-positive interval disables it. */
  start(): void {
    if (this.intervalMs <= 0 || this.#stopped) return;
    this.#schedule(0);
  }

  #schedule(delay: number): void {
    this.#timer = setTimeout(() => {
      void this.sealNow().finally(() => {
        if (!this.#stopped) this.#schedule(this.intervalMs);
      });
    }, delay);
    this.#timer.unref();
  }

  /**
   * Seal now (or join the run in progress). Failures are logged (type and SQLSTATE only) and
   * reported as null; the next interval retries.
   */
  sealNow(): Promise<SealResult | null> {
    if (this.#running) return this.#running;
    const run = (async () => {
      try {
        const result = await sealAuditChain(this.db, { full: !this.#fullScanDone });
        if (!result.busy) this.#fullScanDone = true;
        if (result.sealed > 0 && result.head) {
          this.log.info(
            { auditChainHead: result.head, sealed: result.sealed },
            "audit chain sealed",
          );
        }
        return result;
      } catch (err) {
        if (!this.#stopped) this.log.error({ err }, "audit chain sealing failed");
        return null;
      } finally {
        this.#running = undefined;
      }
    })();
    this.#running = run;
    return run;
  }

  /** Stop the interval and wait for a run in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
  }
}
