import { createHash } from "node:crypto";
import { mkdir, readFile, realpath, unlink, writeFile } from "node:fs/promises";
import { createConnection, createServer, type Server } from "node:net";

/**
 * One owner per PGlite data directory (upstream electric-sql/pglite #327, #709: two
 * instances on one directory corrupt its WAL).
 *
 * The lock is a listening Unix socket whose name is derived from the directory's real path. On
 * Linux it lives in the abstract namespace (`\0haven-lock-<sha256 of realpath>`): it has no file,
 * and the kernel frees the name the moment the owning process dies, `kill -9` included, so nothing
 * ever needs cleaning up by hand. Elsewhere it is a socket file beside the data directory; a
 * leftover file whose owner is gone refuses connections and is replaced.
 *
 * The owner answers every connection with its pid, so a refused process can name it. A pid file
 * (`<dir>.pid`) is written beside the directory for operators; it is informational only and never
 * consulted to decide who owns the directory.
 *
 * Scope: the lock excludes processes that share a kernel and (on Linux) a network namespace, the
 * case of `npm start` twice or a CLI beside a running server. See docs/decisions/0012.
 */

/** Thrown when another live process holds the data directory. The message is one line. */
export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
  constructor(
    readonly dir: string,
    /** The owner's pid as it reported it, or null if it did not answer in time. */
    readonly ownerPid: number | null,
  ) {
    super(
      `The embedded database ${dir} is in use by ${ownerPid === null ? "another process" : `process ${ownerPid}`} ` +
        "(a running Haven server?). Stop that server first, or use PostgreSQL through DATABASE_URL " +
        "to run several processes on one database.",
    );
  }
}

/** A held data-directory lock. */
export interface DataDirLock {
  /** Real path of the locked directory. */
  readonly dir: string;
  /** Free the lock (idempotent). The kernel also frees it when the process exits. */
  release(): Promise<void>;
}

const ABSTRACT = process.platform === "linux";

/** Socket name for a real directory path: abstract on Linux, a file beside the directory elsewhere. */
export function lockSocketName(realDir: string): string {
  const hash = createHash("sha256").update(realDir, "utf8").digest("hex").slice(0, 40);
  return ABSTRACT ? `\0haven-lock-${hash}` : `${realDir}.lock.sock`;
}

function listen(server: Server, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off("listening", onListening);
      reject(err);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(name);
  });
}

/**
 * Ask the owner of `name` for its pid.
 * @returns the pid, null if it did not answer within `timeoutMs`, or "gone" when nobody listens
 */
function askOwner(name: string, timeoutMs = 1000): Promise<number | null | "gone"> {
  return new Promise((resolve) => {
    let data = "";
    const socket = createConnection(name);
    const done = (v: number | null | "gone") => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      data += chunk;
      const m = /^haven-lock pid=(\d+)\n/.exec(data);
      if (m) done(Number(m[1]));
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      done(err.code === "ECONNREFUSED" || err.code === "ENOENT" ? "gone" : null);
    });
    socket.on("end", () => done(null));
  });
}

/**
 * Take the exclusive lock on a PGlite data directory (created if missing).
 * @param dir the data directory, as configured (relative paths resolve against the cwd)
 * @returns the held lock; keep it for as long as the database is open
 * @throws DataDirLockedError when another live process (or this one) holds it
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  await mkdir(dir, { recursive: true });
  const real = await realpath(dir);
  const name = lockSocketName(real);
  const server = createServer((socket) => {
    socket.on("error", () => {});
    socket.end(`haven-lock pid=${process.pid}\n`);
  });
  for (let attempt = 0; ; attempt++) {
    try {
      await listen(server, name);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
      const owner = await askOwner(name);
      // A socket file left by a dead owner (non-Linux only): remove it once and try again.
      if (owner === "gone" && !ABSTRACT && attempt === 0) {
        await unlink(name).catch(() => {});
        continue;
      }
      throw new DataDirLockedError(dir, typeof owner === "number" ? owner : null);
    }
  }
  // The lock must never keep the process alive by itself.
  server.unref();
  const pidFile = `${real}.pid`;
  await writeFile(pidFile, `${process.pid}\n`).catch(() => {});
  let released = false;
  return {
    dir: real,
    release: async () => {
      if (released) return;
      released = true;
      if ((await readFile(pidFile, "utf8").catch(() => "")).trim() === String(process.pid)) {
        await unlink(pidFile).catch(() => {});
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
