import { sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Database, type DatabaseHandle, openDatabase } from "../../db/client.ts";
import { rowsOf } from "../../db/rows.ts";
import { type CounterStore, postgresRateLimitStore } from "../rate-limit-store.ts";
import { createHarness, type Harness } from "../test/harness.ts";

/**
 * The shared rate-limit counter store groups concurrent hits on one bucket into one upsert and
 * still counts every hit exactly once, with the position each would have had one by one, across
 * instances (two connection pools on one database).
 */
let h: Harness;
let second: DatabaseHandle;

beforeAll(async () => {
  h = await createHarness();
  second = await openDatabase({ url: h.testDb.url, maxConnections: 2 });
});
afterAll(async () => {
  await second?.close();
  await h?.close();
});
beforeEach(async () => {
  await h.testDb.handle.db.execute(sql`DELETE FROM rate_limit_buckets`);
});

/** `db` with a count of the statements sent through `execute` (the store's only call). */
function counted(db: Database): { db: Database; statements: () => number } {
  let n = 0;
  const proxy = new Proxy(db, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (prop !== "execute" || typeof v !== "function") return v;
      return (...args: unknown[]) => {
        n++;
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { db: proxy, statements: () => n };
}

function hit(
  store: CounterStore,
  key: string,
  windowMs: number,
): Promise<{ current: number; ttl: number }> {
  return new Promise((resolve, reject) => {
    store.incr(key, (err, res) => (err || !res ? reject(err) : resolve(res)), windowMs);
  });
}

async function storedHits(bucket: string): Promise<number> {
  const r = await h.testDb.handle.db.execute(
    sql`SELECT hits FROM rate_limit_buckets WHERE bucket = ${bucket}`,
  );
  return Number(rowsOf<{ hits: number }>(r)[0]?.hits ?? 0);
}

describe("rate-limit counter store", () => {
  it("30 concurrent hits: positions 1..30 each once, in fewer upserts than hits", async () => {
    const { db, statements } = counted(h.testDb.handle.db);
    const Store = postgresRateLimitStore(db);
    const store = new Store();
    const results = await Promise.all(
      Array.from({ length: 30 }, () => hit(store, "sess:a", 60_000)),
    );
    expect(results.map((r) => r.current).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    for (const r of results) {
      expect(r.ttl).toBeGreaterThan(0);
      expect(r.ttl).toBeLessThanOrEqual(60_000);
    }
    expect(statements()).toBeLessThan(30);
    expect(await storedHits("sess:a")).toBe(30);
    // Another bucket is not held up by, nor counted with, the first.
    expect((await hit(store, "ip:127.0.0.1", 60_000)).current).toBe(1);
  });

  it("two instances on one database share the count exactly", async () => {
    const A = postgresRateLimitStore(h.testDb.handle.db);
    const B = postgresRateLimitStore(second.db);
    const a = new A();
    const b = new B();
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => hit(i % 2 ? a : b, "sess:shared", 60_000)),
    );
    expect(results.map((r) => r.current).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
    expect(await storedHits("sess:shared")).toBe(40);
  });

  it("a window that ended restarts at the size of the group", async () => {
    const Store = postgresRateLimitStore(h.testDb.handle.db);
    const store = new Store();
    await Promise.all(Array.from({ length: 5 }, () => hit(store, "sess:w", 200)));
    await new Promise((r) => setTimeout(r, 300));
    const again = await Promise.all(Array.from({ length: 7 }, () => hit(store, "sess:w", 200)));
    expect(again.map((r) => r.current).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(await storedHits("sess:w")).toBe(7);
  });

  it("a failing database fails every hit of the group, and the next group goes out", async () => {
    const broken = await openDatabase({ url: h.testDb.url, maxConnections: 1 });
    await broken.close();
    const Store = postgresRateLimitStore(broken.db);
    const store = new Store();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 6 }, () => hit(store, "sess:down", 60_000)),
    );
    expect(outcomes.every((o) => o.status === "rejected")).toBe(true);
    await expect(hit(store, "sess:down", 60_000)).rejects.toBeDefined();
  });

  it("a callback that throws does not keep the rest of its group from their answers", async () => {
    const Store = postgresRateLimitStore(h.testDb.handle.db);
    const store = new Store();
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(String(w.code));
    process.on("warning", onWarning);
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown) => unhandled.push(r);
    process.on("unhandledRejection", onUnhandled);
    try {
      // The first hit goes out alone; the next three queue behind it and share one upsert, the
      // first of which throws.
      const first = hit(store, "sess:throws", 60_000);
      store.incr(
        "sess:throws",
        () => {
          throw new Error("caller bug");
        },
        60_000,
      );
      const rest = [hit(store, "sess:throws", 60_000), hit(store, "sess:throws", 60_000)];
      const answers = await Promise.all([first, ...rest]);
      expect(answers.map((a) => a.current)).toEqual([1, 3, 4]);
      await new Promise((r) => setTimeout(r, 50));
      expect(warnings).toContain("HAVEN_RATE_LIMIT_CB");
      expect(unhandled).toEqual([]);
      // The bucket still works for the next group.
      expect((await hit(store, "sess:throws", 60_000)).current).toBe(5);
    } finally {
      process.off("warning", onWarning);
      process.off("unhandledRejection", onUnhandled);
    }
  });
});
