import { and, eq } from "drizzle-orm";
import { type HavenClient, isHavenError, type TRPCClientError } from "../../client-sdk/index.ts";
import { auditEvents } from "../../db/schema/index.ts";
import type { AppRouter } from "../router.ts";
import type { Harness } from "../test/harness.ts";

/** Helpers for the auth test files (not a test file itself). */

/** The Haven error a promise rejects with; fails the test when it resolves. */
export async function errorOf(p: Promise<unknown>): Promise<TRPCClientError<AppRouter>> {
  try {
    await p;
  } catch (err) {
    if (isHavenError(err)) return err;
    throw err;
  }
  throw new Error("expected the call to fail");
}

/** `{ code, reason }` of a failed call, or "OK". */
export async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    if (!isHavenError(err)) throw err;
    return err.data?.reason ? `${err.data.code}:${err.data.reason}` : String(err.data?.code);
  }
}

/** Raw tRPC call over fetch with a cookie (what a browser sends), superjson-wrapped input. */
export async function cookieCall(
  url: string,
  path: string,
  opts: {
    cookie?: string;
    origin?: string | null;
    input?: unknown;
    method?: "GET" | "POST";
    headers?: Record<string, string>;
  } = {},
): Promise<{ status: number; body: unknown; setCookie: string | null; headers: Headers }> {
  const method = opts.method ?? "POST";
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.cookie) headers.cookie = `haven_session=${opts.cookie}`;
  if (opts.origin !== null) headers.origin = opts.origin ?? url;
  let target = `${url}/trpc/${path}`;
  let body: string | undefined;
  if (method === "POST") {
    headers["content-type"] = "application/json";
    body = JSON.stringify(opts.input === undefined ? {} : { json: opts.input });
  } else if (opts.input !== undefined) {
    target += `?input=${encodeURIComponent(JSON.stringify({ json: opts.input }))}`;
  }
  const res = await fetch(target, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return {
    status: res.status,
    body: parsed,
    setCookie: res.headers.get("set-cookie"),
    headers: res.headers,
  };
}

/** The session token in a `Set-Cookie: haven_session=…` header ("" when cleared). */
export function cookieToken(setCookie: string | null): string | null {
  const m = /haven_session=([^;]*)/.exec(setCookie ?? "");
  return m ? (m[1] ?? "") : null;
}

/** Audit rows for an action (optionally of one actor), oldest first. */
export async function auditRows(h: Harness, action: string, actorUserId?: string) {
  const rows = await h.deps.db
    .select()
    .from(auditEvents)
    .where(
      actorUserId
        ? and(eq(auditEvents.action, action), eq(auditEvents.actorUserId, actorUserId))
        : eq(auditEvents.action, action),
    );
  return rows.sort(
    (a, b) => a.occurredAt.getTime() - b.occurredAt.getTime() || a.id.localeCompare(b.id),
  );
}

/** Just the login fields of a test user (the login input is a strict object). */
export function creds(u: { email: string; password: string }): { email: string; password: string } {
  return { email: u.email, password: u.password };
}

/** Advance the harness clock by `ms`. */
export function advance(h: Harness, ms: number): void {
  h.clock.now = new Date(h.clock.now.getTime() + ms);
}

export type { HavenClient };
