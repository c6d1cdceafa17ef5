import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { btree_gist } from "@electric-sql/pglite/contrib/btree_gist";
import { pgcrypto } from "@electric-sql/pglite/contrib/pgcrypto";
import type { ExtractTablesWithRelations } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { lockDataDir } from "./lock.ts";
import * as schema from "./schema/index.ts";

export type Schema = typeof schema;
/** The driver-neutral Drizzle handle every service takes (PGlite and postgres.js share it). */
export type Database = PgDatabase<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;
export type Transaction = PgTransaction<
  PgQueryResultHKT,
  Schema,
  ExtractTablesWithRelations<Schema>
>;
/** Either the database or an open transaction: services accept both. */
export type Executor = Database | Transaction;

export const MIGRATIONS_FOLDER = resolve(dirname(fileURLToPath(import.meta.url)), "migrations");

export interface DatabaseHandle {
  db: Database;
  kind: "pglite" | "postgres";
  /** Run the committed drizzle-kit migrations (idempotent). */
  migrate(): Promise<void>;
  /** Cheap liveness query for /readyz. */
  ping(): Promise<void>;
  /**
   * LISTEN on a channel (lower-case identifier). `onPayload` gets each NOTIFY payload; `onListen`
   * runs whenever the listen is (re-)established, so callers can catch up on anything sent while
   * disconnected. postgres.js multiplexes all listeners on one dedicated connection; PGlite runs
   * them in-process (single instance). @returns a function that stops listening
   */
  listen(
    channel: string,
    onPayload: (payload: string) => void,
    onListen?: () => void,
  ): Promise<() => Promise<void>>;
  /** NOTIFY outside a transaction (inside one, use `SELECT pg_notify(...)` so it fires on commit). */
  notify(channel: string, payload: string): Promise<void>;
  /**
   * Embedded only: a consistent tarball of the PGlite data directory (`dumpDataDir`), taken by
   * this handle while it holds the database (and the data-directory lock). Absent on Postgres.
   */
  dumpDataDir?(): Promise<Blob>;
  close(): Promise<void>;
}

/**
 * PGlite's `shared_buffers` in MB unless a caller asks otherwise. PGlite (0.5) starts PostgreSQL
 * with the server default of 128 MB inside its WebAssembly memory and touches all of it at
 * start-up, so it is resident for the life of the process (WebAssembly memory never shrinks). The
 * embedded mode is the single-node development / small-clinic mode, and PGlite reads its data
 * files through Node's fs (the OS page cache still caches them), so 32 MB of buffer pool is
 * enough: measured −95 MB RSS for a bare PGlite, and the Haven figures in
 * bench/results/optimisations.md §9.
 */
export const PGLITE_SHARED_BUFFERS_MB = 32;

function assertChannel(channel: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) throw new Error("invalid LISTEN channel name");
}

export interface DatabaseOptions {
  /** postgres://… → the `postgres` driver; undefined → embedded PGlite. */
  url?: string | undefined;
  /** PGlite data directory (`memory://` for an in-memory database). */
  pgliteDir?: string;
  /**
   * PGlite's `shared_buffers`, MB (default {@link PGLITE_SHARED_BUFFERS_MB}). PGlite's own default
   * is 128 MB, all of it resident in the WebAssembly memory from start-up.
   */
  pgliteSharedBuffersMb?: number;
  /** Pool size for the postgres driver. */
  maxConnections?: number;
  /**
   * A direct (not pooled) Postgres URL for what a transaction pooler (PgBouncer
   * `pool_mode=transaction`) cannot carry: LISTEN/NOTIFY and migrations. When set, `url` is taken
   * to be such a pooler and protocol-level prepared statements are switched off (PgBouncer 1.18
   * cannot route them; docs/scaling.md).
   */
  directUrl?: string | undefined;
  /** Seconds to wait for a Postgres connection before failing the query (default 3). */
  connectTimeoutSeconds?: number;
}

/**
 * Delay before the driver's next connection attempt after `retries` failed ones, in seconds:
 * 50 ms doubling, capped at 250 ms (the driver's own default grows to 20 s, so Haven would stay
 * unavailable for seconds after PostgreSQL is back). Jittered ±25 % so instances do not reconnect
 * in lockstep.
 */
export function reconnectBackoffSeconds(retries: number): number {
  const base = Math.min(0.05 * 2 ** Math.max(0, retries - 1), 0.25);
  return base * (0.75 + Math.random() / 2);
}

/**
 * postgres.js's hook that decides, after a query is written, whether the connection may take the
 * next query before this one's ReadyForQuery (pipelining). Returning false parks the connection
 * until ReadyForQuery. It is the same per-query option the driver's own `sql.begin` uses to
 * reserve its connection (postgres 3.4.x, src/connection.js `execute`, src/index.js `begin`);
 * `server/test/pooler.test.ts` fails if a driver update changes what it does.
 */
// Not in the driver's declared options (internal), hence the cast.
const NO_PIPELINING = { onexecute: () => false } as unknown as postgres.UnsafeQueryOptions;

/**
 * How Haven's Drizzle handle talks to postgres.js, per query (also inside transactions and
 * savepoints):
 *
 * - **Direct to PostgreSQL** (`pooled: false`): every query `admission` admits (a bounded set of
 *   fixed texts, {@link PreparedAdmission}) asks to be prepared. Drizzle's
 *   postgres-js session passes `prepare: false` unless a query is given a name, so each
 *   parameterised query cost a Describe round trip plus a re-parse and re-plan in Postgres;
 *   postgres.js caches prepared statements per connection by SQL text and parameter types.
 *   (bench/results/optimisations.md §2)
 * - **Behind a transaction pooler** (`pooled: true`, PgBouncer `pool_mode=transaction`): nothing is
 *   prepared (the client-level `prepare: false` wins), and a query without parameters is never
 *   pipelined behind. Without parameters postgres.js sends Parse/Bind/Execute/Sync and lets the
 *   next query follow on the same socket; a parameterised query (unprepared) goes out as
 *   Parse/Describe/Flush and only sends Bind/Execute/Sync once the server has described it.
 *   PgBouncer 1.18 (Debian 12) hands the server connection back to its pool at the first
 *   query's ReadyForQuery, with the second query's Parse/Describe already on it: the Describe's
 *   answer reaches nobody (the call waits forever) or another client. Measured against the Debian
 *   package: 30 rounds of 30 concurrent queries, a quarter of them `select 1`, on a pool of 4:
 *   65 answered, 835 hung; with this rule 900/900 answered, each correctly.
 *   (pgbouncer/pgbouncer#759; docs/scaling.md "Lost calls behind PgBouncer")
 */
export function driverForDrizzle(
  sql: postgres.Sql,
  pooled: boolean,
  admission: PreparedAdmission = new PreparedAdmission(),
): postgres.Sql {
  type Unsafe = (query: string, params?: unknown[], options?: object) => unknown;
  return new Proxy(sql, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (key === "unsafe") {
        return (query: string, params?: unknown[], options?: object) =>
          (value as Unsafe).call(target, query, params, {
            ...options,
            prepare: admission.admit(query, params?.length ?? 0),
            ...(pooled && (params?.length ?? 0) === 0 ? NO_PIPELINING : {}),
          });
      }
      if (key === "begin" || key === "savepoint") {
        return (...args: unknown[]) => {
          const fn = args.pop() as (tx: postgres.Sql) => unknown;
          return (value as (...a: unknown[]) => unknown).call(target, ...args, (tx: postgres.Sql) =>
            fn(driverForDrizzle(tx, pooled, admission)),
          );
        };
      }
      return value;
    },
  });
}

/**
 * Which SQL texts {@link driverForDrizzle} asks postgres.js to prepare. postgres.js keeps every
 * prepared statement of a connection (keyed by parameter types + SQL text, with its column
 * descriptions) until the connection closes, and never evicts; PostgreSQL keeps the matching
 * prepared statement and cached plan in each backend. SQL whose text varies with the data — a
 * multi-row INSERT of N rows (the audit group commit writes 1…1,000 rows per statement: up to
 * 1,000 texts of up to 15,000 parameters), an `IN (…)` list of N ids — would make a new entry per
 * distinct N on every connection, without bound. So a text is prepared only when
 *
 * - it has at most `maxParams` parameters (such texts are the fixed, hot queries; a long
 *   parameter list is almost always a variable-length list, and its parse/plan is small next to
 *   its payload), and
 * - it is one of the first `maxTexts` distinct texts admitted (admitted texts stay admitted, so
 *   each connection's cache holds at most `maxTexts` statements).
 *
 * Anything else goes out unnamed (Parse/Describe/Bind/Execute, as before preparation was on).
 * Measured effect: bench/results/optimisations.md §9.
 */
export class PreparedAdmission {
  readonly #admitted = new Set<string>();

  /**
   * @param maxTexts most distinct SQL texts ever prepared (per database handle)
   * @param maxParams most parameters of a text that is prepared
   */
  constructor(
    readonly maxTexts = 512,
    readonly maxParams = 64,
  ) {}

  /** Whether to prepare `query` (sent with `paramCount` parameters); admits it when there is room. */
  admit(query: string, paramCount: number): boolean {
    if (this.#admitted.has(query)) return true;
    if (paramCount > this.maxParams || this.#admitted.size >= this.maxTexts) return false;
    this.#admitted.add(query);
    return true;
  }

  /** Distinct texts admitted so far (at most `maxTexts`). */
  get size(): number {
    return this.#admitted.size;
  }
}

/**
 * Open the database in one of the two modes (ARCHITECTURE §5). The embedded mode first takes the
 * data directory's exclusive lock (db/lock.ts) and holds it until `close()`.
 * @throws DataDirLockedError when another process holds the PGlite data directory
 * @throws the driver's connection error when Postgres is unreachable (first query)
 */
export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  if (options.url) {
    const driverOptions = {
      onnotice: () => {},
      // Never echo parameters (PHI) in driver errors.
      debug: false,
      connect_timeout: options.connectTimeoutSeconds ?? 3,
      backoff: reconnectBackoffSeconds,
    };
    const pooled = Boolean(options.directUrl);
    const client = postgres(options.url, {
      ...driverOptions,
      max: options.maxConnections ?? 10,
      prepare: !pooled,
    });
    // LISTEN and migrations need a real session: the direct connection when behind a pooler.
    const direct = options.directUrl
      ? postgres(options.directUrl, { ...driverOptions, max: 1 })
      : client;
    const db = drizzlePostgres({
      client: driverForDrizzle(client, pooled),
      schema,
    }) as unknown as Database;
    return {
      db,
      kind: "postgres",
      migrate: async () => {
        await migratePostgres(drizzlePostgres({ client: direct, schema }), {
          migrationsFolder: MIGRATIONS_FOLDER,
        });
      },
      ping: async () => {
        // Parameterless, so never pipelined behind a pooler (driverForDrizzle).
        await client.unsafe("select 1", [], pooled ? NO_PIPELINING : {});
      },
      listen: async (channel, onPayload, onListen) => {
        assertChannel(channel);
        const { unlisten } = await direct.listen(channel, onPayload, onListen);
        return unlisten;
      },
      notify: async (channel, payload) => {
        assertChannel(channel);
        await client.notify(channel, payload);
      },
      close: async () => {
        await client.end({ timeout: 5 });
        if (direct !== client) await direct.end({ timeout: 5 });
      },
    };
  }
  const dir = options.pgliteDir ?? ".haven/pglite";
  // One owner per data directory, taken BEFORE PGlite touches it (db/lock.ts).
  const lock = dir.startsWith("memory://") ? undefined : await lockDataDir(dir);
  let client: PGlite;
  try {
    client = await PGlite.create(dir, {
      extensions: { btree_gist, pgcrypto },
      startParams: [
        ...PGlite.defaultStartParams,
        "-c",
        `shared_buffers=${options.pgliteSharedBuffersMb ?? PGLITE_SHARED_BUFFERS_MB}MB`,
      ],
    });
  } catch (err) {
    await lock?.release();
    throw err;
  }
  const pdb = drizzlePglite({ client, schema });
  return {
    db: pdb as unknown as Database,
    kind: "pglite",
    migrate: async () => {
      await migratePglite(pdb, { migrationsFolder: MIGRATIONS_FOLDER });
    },
    ping: async () => {
      await client.query("select 1");
    },
    listen: async (channel, onPayload, onListen) => {
      assertChannel(channel);
      const unsubscribe = await client.listen(channel, onPayload);
      onListen?.();
      return async () => {
        if (!client.closed) await unsubscribe();
      };
    },
    notify: async (channel, payload) => {
      assertChannel(channel);
      await client.query("SELECT pg_notify($1, $2)", [channel, payload]);
    },
    dumpDataDir: async () => await client.dumpDataDir("gzip"),
    close: async () => {
      try {
        if (!client.closed) await client.close();
      } finally {
        await lock?.release();
      }
    },
  };
}

export { schema };
