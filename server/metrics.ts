import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * Prometheus metrics for one Haven server (ARCHITECTURE §4 operations). Labels are procedure
 * paths, procedure types, tRPC error codes and queue statuses only — never ids, names or any
 * other PHI (HIPAA 45 CFR 164.312(b); a metrics backend is outside Haven's audit boundary).
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #calls: Counter<"procedure" | "type" | "code">;
  readonly #duration: Histogram<"procedure" | "type">;

  /**
   * @param queueDepth optional scrape-time reader of the reminder queue: count per status
   */
  constructor(options: { queueDepth?: () => Promise<Record<string, number>> } = {}) {
    collectDefaultMetrics({ register: this.registry, prefix: "haven_" });
    this.#calls = new Counter({
      name: "haven_trpc_calls_total",
      help: "tRPC procedure calls by outcome (OK or the tRPC error code)",
      labelNames: ["procedure", "type", "code"],
      registers: [this.registry],
    });
    this.#duration = new Histogram({
      name: "haven_trpc_duration_seconds",
      help: "tRPC query and mutation latency in seconds (subscriptions excluded)",
      labelNames: ["procedure", "type"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    const readDepth = options.queueDepth;
    if (readDepth) {
      new Gauge({
        name: "haven_reminders",
        help: "Reminder rows by status (queue depth: pending and claimed)",
        labelNames: ["status"],
        registers: [this.registry],
        async collect() {
          this.reset();
          for (const [status, n] of Object.entries(await readDepth())) this.set({ status }, n);
        },
      });
    }
  }

  /** Record one finished procedure call. `seconds` is wall time spent in the procedure. */
  observe(procedure: string, type: string, code: string, seconds: number): void {
    this.#calls.inc({ procedure, type, code });
    if (type !== "subscription") this.#duration.observe({ procedure, type }, seconds);
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
