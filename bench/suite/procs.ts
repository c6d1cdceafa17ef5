/**
 * Child processes of the bench: Haven, the floor and the load generator, plus the per-process
 * counters read from /proc (CPU ticks, RSS) and a small tRPC-over-fetch client.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Secret, TOTP } from "otpauth";
import { TOTP_SETTINGS } from "../../server/mfa/service.ts";
import type { LoadResult, LoadSpec } from "./loader.ts";

export const SUITE_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = resolve(SUITE_DIR, "../..");

/** A running child that printed its `{ url, pid, … }` line. */
export interface Child<T> {
  info: T & { url: string; pid: number };
  proc: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Start `script` under `node --import tsx` with `env` added to the environment; resolves with the
 * first JSON line it prints on stdout (an `undefined` value removes the variable). `nodeFlags` go before the script (e.g. `--cpu-prof`).
 * @throws when the child exits or prints nothing within `timeoutMs`
 */
export async function startChild<T>(
  script: string,
  env: Record<string, string | undefined>,
  nodeFlags: string[] = [],
  timeoutMs = 180_000,
): Promise<Child<T>> {
  const proc = spawn(process.execPath, [...nodeFlags, "--import", "tsx", script], {
    cwd: REPO_DIR,
    env: Object.fromEntries(
      Object.entries({ ...process.env, ...env }).filter(([, v]) => v !== undefined),
    ),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const info = await new Promise<T & { url: string; pid: number }>((ok, fail) => {
    let buf = "";
    const timer = setTimeout(() => fail(new Error(`${script}: no ready line`)), timeoutMs);
    proc.stdout?.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        ok(JSON.parse(buf.slice(0, nl)));
      }
    });
    proc.once("exit", (code) => fail(new Error(`${script} exited with ${code}`)));
  });
  proc.stdout?.resume();
  return {
    info,
    proc,
    stop: () =>
      new Promise<void>((ok) => {
        if (proc.exitCode !== null) return ok();
        proc.once("exit", () => ok());
        proc.kill("SIGTERM");
      }),
  };
}

/** CPU time (user + system, ms) and resident set size (MB) of a live process, from /proc. */
export function procStats(pid: number): { cpuMs: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[11], fields[12] = utime, stime in clock ticks (USER_HZ = 100 on Linux).
  const cpuMs = (Number(fields[11]) + Number(fields[12])) * 10;
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = /VmRSS:\s+(\d+) kB/.exec(status);
  return { cpuMs, rssMb: rss ? Number(rss[1]) / 1024 : 0 };
}

/** One load run against a server, with the server's CPU per successful call and RSS after. */
export interface RunResult extends LoadResult {
  cpuMsPerCall: number;
  rssMb: number;
  load1: number;
}

/** Run the autocannon loader in its own process against `spec`, measuring server `pid`. */
export async function runLoad(
  spec: LoadSpec,
  pid: number,
  callsPerRequest = 1,
): Promise<RunResult> {
  const before = procStats(pid);
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", resolve(SUITE_DIR, "loader.ts"), JSON.stringify(spec)],
    { cwd: REPO_DIR, stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  proc.stdout.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const code = await new Promise<number | null>((ok) => proc.once("exit", ok));
  if (code !== 0) throw new Error(`loader exited with ${code}`);
  const after = procStats(pid);
  const r = JSON.parse(out.trim().split("\n").pop() ?? "{}") as LoadResult;
  const { loadavg } = await import("node:os");
  return {
    ...r,
    rps: r.rps * callsPerRequest,
    cpuMsPerCall: r.ok > 0 ? (after.cpuMs - before.cpuMs) / (r.ok * callsPerRequest) : 0,
    rssMb: after.rssMb,
    load1: loadavg()[0] ?? 0,
  };
}

/** `GET /trpc/<path>?input=…` URL for a tRPC query with superjson input. */
export function queryUrl(base: string, path: string, input: unknown): string {
  return `${base}/trpc/${path}?input=${encodeURIComponent(JSON.stringify({ json: input }))}`;
}

/** `GET` URL of a tRPC batch of `n` identical calls. */
export function batchUrl(base: string, path: string, input: unknown, n: number): string {
  const paths = Array.from({ length: n }, () => path).join(",");
  const inputs = Object.fromEntries(Array.from({ length: n }, (_, i) => [i, { json: input }]));
  return `${base}/trpc/${paths}?batch=1&input=${encodeURIComponent(JSON.stringify(inputs))}`;
}

async function mutate(base: string, path: string, input: unknown, token?: string) {
  const res = await fetch(`${base}/trpc/${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ json: input }),
  });
  const body = (await res.json()) as { result?: { data: { json: { token: string } } } };
  if (!res.ok || !body.result) throw new Error(`${path} failed with ${res.status}`);
  return body.result.data.json;
}

/** Sign in (and pass TOTP MFA when `totpSecret` is given); returns the bearer token. */
export async function signIn(
  base: string,
  email: string,
  password: string,
  totpSecret?: string,
): Promise<string> {
  const { token } = await mutate(base, "auth.login", { email, password });
  if (!totpSecret) return token;
  const code = new TOTP({
    algorithm: TOTP_SETTINGS.algorithm,
    digits: TOTP_SETTINGS.digits,
    period: TOTP_SETTINGS.period,
    secret: Secret.fromBase32(totpSecret),
  }).generate();
  return (await mutate(base, "auth.mfa.verify", { code }, token)).token;
}
