import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Real child processes for cross-process tests: `node --import tsx <entry>` from the
 * repository root with a chosen environment. Nothing is shared with the test process but the
 * file system and the database, exactly like `npm start` next to an operator's CLI.
 */

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Environment for a child: the test's PATH etc., NODE_ENV=test, quiet logs, plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(base)) {
    if (k.startsWith("HAVEN_") || k === "DATABASE_URL" || k === "PORT" || k.startsWith("VITEST"))
      delete base[k];
  }
  return { ...base, NODE_ENV: "test", LOG_LEVEL: "warn", ...env };
}

/** A finished command. */
export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Run `node --import tsx <script> …args` to completion.
 * @param timeoutMs kill -9 after this long (the result then has signal SIGKILL)
 */
export function runScript(
  script: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<CommandResult> {
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
      cwd: REPO_ROOT,
      env: childEnv(env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it (listen on port 0), then
 * it is released for the caller's child process. For tests that must know a server's port before
 * it prints one; never a fixed number, which another server of the same parallel run may hold.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => ok());
  });
  const address = server.address();
  await new Promise<void>((ok) => server.close(() => ok()));
  if (address === null || typeof address === "string") throw new Error("no TCP port assigned");
  return address.port;
}

/** A Haven server running in a child process. */
export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  /** Everything written so far. */
  output(): string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** kill -9 and wait for the exit. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
}

/**
 * Start `server/main.ts` (PORT 0 unless `env.PORT` says otherwise) and wait for "Haven is ready".
 * @throws Error with the child's output when it exits first or is not ready within `timeoutMs`
 */
export async function startServerProcess(
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<ServerProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    cwd: REPO_ROOT,
    env: childEnv({ PORT: "0", HOST: "127.0.0.1", ...env }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.setEncoding("utf8").on("data", (c: string) => {
    out += c;
  });
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    out += c;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => {
    child.on("exit", (code, signal) => r({ code, signal }));
  });
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`server not ready in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const check = () => {
      const m = /API \(tRPC\):\s+(http:\/\/\S+)\/trpc/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    };
    child.stdout?.on("data", check);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before ready:\n${out}`));
    });
  });
  const pid = child.pid as number;
  return {
    child,
    pid,
    url,
    output: () => out,
    exited,
    kill9: async () => {
      child.kill("SIGKILL");
      await exited;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
