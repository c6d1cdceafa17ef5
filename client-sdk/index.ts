import {
  createTRPCClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  type TRPCClient,
  TRPCClientError,
} from "@trpc/client";
import type { inferRouterInputs, inferRouterOutputs } from "@trpc/server";
import type { TRPC_ERROR_CODE_KEY } from "@trpc/server/rpc";
import { EventSource, type FetchLike } from "eventsource";
import superjson from "superjson";
import type { ErrorData, FieldIssue } from "../server/api-boundary.ts";
import type { AppRouter } from "../server/router.ts";

export type { AppRouter };
/** Input type of every procedure, e.g. `RouterInputs["patients"]["get"]`. */
export type RouterInputs = inferRouterInputs<AppRouter>;
/** Output type of every procedure, e.g. `RouterOutputs["patients"]["get"]`. */
export type RouterOutputs = inferRouterOutputs<AppRouter>;

/** Extra request headers: a fixed record, or a function called before every request. */
export type HavenHeaders =
  | Record<string, string>
  | (() => Record<string, string> | Promise<Record<string, string>>);

export interface HavenClientOptions {
  /** Base URL of the Haven server, e.g. `http://127.0.0.1:3000` (the client appends `/trpc`). */
  url: string;
  /**
   * Session token from `auth.login` / `auth.mfa.verify`, or an API key (`hk_…`); sent as
   * `Authorization: Bearer`. Omit it in a browser on Haven's origin: the `haven_session` cookie
   * (HttpOnly) authenticates instead.
   */
  token?: string;
  /** Custom fetch (tests, proxies, `credentials: "include"` for a cross-origin cookie setup). */
  fetch?: typeof fetch;
  /** Extra headers on every request (e.g. a tracing id). `authorization` is ignored when `token` is set. */
  headers?: HavenHeaders;
}

/** The typed client: `haven.<domain>.<procedure>.query | mutate | subscribe(input)`. */
export type HavenClient = TRPCClient<AppRouter>;

async function headersOf(options: HavenClientOptions): Promise<Record<string, string>> {
  const extra =
    typeof options.headers === "function" ? await options.headers() : (options.headers ?? {});
  return options.token ? { ...extra, authorization: `Bearer ${options.token}` } : { ...extra };
}

/**
 * A typed Haven client over HTTP batching with superjson (Dates stay `Date`).
 *
 * Queries are sent as POST (`methodOverride`), so search inputs such as family name and birth date
 * never appear in URLs, proxy logs or browser history (ADR 0002). Subscriptions
 * (`appointments.onChange`) use Server-Sent Events through a fetch-based EventSource that sends the
 * bearer token in the `Authorization` header, never in the URL (ARCHITECTURE §3); without a token
 * the browser's cookie authenticates. Streams resume after the last received event id.
 *
 * Runs in Node ≥ 20.19 and in browsers (no Node built-ins). Errors: every failed call rejects with a
 * `TRPCClientError`; narrow it with {@link isHavenError}.
 *
 * @example
 * const haven = createHavenClient({ url: "http://127.0.0.1:3000", token });
 * const record = await haven.patients.get.query({ patientId });
 */
export function createHavenClient(options: HavenClientOptions): HavenClient {
  const base = options.url.replace(/\/+$/, "");
  const batch = httpBatchLink({
    url: `${base}/trpc`,
    transformer: superjson,
    methodOverride: "POST",
    maxItems: 20,
    headers: () => headersOf(options),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const sseFetch: FetchLike = async (url, init) =>
    (options.fetch ?? fetch)(url, {
      ...init,
      headers: { ...init.headers, ...(await headersOf(options)) },
    });
  const subscriptions = httpSubscriptionLink({
    url: `${base}/trpc`,
    transformer: superjson,
    EventSource,
    eventSourceOptions: { fetch: sseFetch, withCredentials: true },
  });
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === "subscription",
        true: subscriptions,
        false: batch,
      }),
    ],
  });
}

/** A tRPC error code as Haven uses them (`BAD_REQUEST`, `UNAUTHORIZED`, `FORBIDDEN`, …). */
export type HavenErrorCode = TRPC_ERROR_CODE_KEY;

/** One field-level validation problem (`BAD_REQUEST`): dotted path and message. */
export type HavenFieldIssue = FieldIssue;

/**
 * What every Haven error carries in `error.data`: `code`, `httpStatus`, `path`, `requestId`,
 * `issues` (BAD_REQUEST field problems), `reason` (`mfa_required`, `slot_taken`, …) and
 * `retryAfterSeconds` (TOO_MANY_REQUESTS); absent ones are `null`.
 */
export type HavenErrorData<C extends HavenErrorCode = HavenErrorCode> = Omit<ErrorData, "code"> & {
  code: C;
};

/** A failed Haven call whose `data` is known to be the server's (see {@link isHavenError}). */
export type HavenError<C extends HavenErrorCode = HavenErrorCode> = TRPCClientError<AppRouter> & {
  data: HavenErrorData<C>;
};

/**
 * Narrow an unknown error to a Haven error answered by the server (`data.code`, `data.issues`,
 * `data.reason`, `data.retryAfterSeconds`), optionally of one code. Network failures and answers
 * that are not Haven's (a proxy's 502) are `TRPCClientError`s without `data`: this returns false.
 *
 * @example
 * catch (e) { if (isHavenError(e, "TOO_MANY_REQUESTS")) await sleep(e.data.retryAfterSeconds! * 1000); }
 */
export function isHavenError<C extends HavenErrorCode = HavenErrorCode>(
  err: unknown,
  code?: C,
): err is HavenError<C> {
  if (!(err instanceof TRPCClientError)) return false;
  const data: unknown = err.data;
  if (typeof data !== "object" || data === null || !("code" in data)) return false;
  return code === undefined || data.code === code;
}

/** `signIn` input: where and who. `totp` is the 6-digit code, needed by MFA-enrolled accounts. */
export interface SignInOptions extends Omit<HavenClientOptions, "token"> {
  email: string;
  password: string;
  /** Current TOTP code (RFC 6238) from the authenticator app; spaces are ignored. */
  totp?: string;
  /**
   * `bearer` (default): the returned client sends the session token as `Authorization: Bearer`.
   * `cookie`: in a browser on Haven's origin, rely on the HttpOnly session cookie the server sets
   * (the token is still returned, but the client does not send it).
   */
  auth?: "bearer" | "cookie";
}

type LoginOutput = RouterOutputs["auth"]["login"];

/** A finished sign-in: the session may call every procedure its role allows. */
export interface SignedIn {
  status: "signed_in";
  client: HavenClient;
  token: string;
  expiresAt: Date;
  user: LoginOutput["user"];
}

/** Password accepted, MFA pending: call `verify` with a TOTP code or a recovery code. */
export interface MfaRequired {
  status: "mfa_required";
  user: LoginOutput["user"];
  /** Session token of the not-yet-verified session (stops working once verified). */
  token: string;
  verify(code: { totp: string } | { recoveryCode: string }): Promise<SignedIn>;
}

/**
 * Password accepted, but a clinician/staff/admin account has no authenticator yet: `client` may
 * call `auth.mfa.enroll` then `auth.mfa.confirm({ code })` (which returns the verified token).
 */
export interface MfaEnrolmentRequired {
  status: "mfa_enrolment_required";
  user: LoginOutput["user"];
  token: string;
  client: HavenClient;
}

export type SignInResult = SignedIn | MfaRequired | MfaEnrolmentRequired;

/**
 * Sign in with e-mail and password (`auth.login`), then — when the account needs it and `totp` is
 * given — pass MFA (`auth.mfa.verify`, which replaces the session: ASVS 3.2.1).
 *
 * @returns `signed_in` with a ready client; `mfa_required` when a code is needed and none was given
 *   (call `verify`); `mfa_enrolment_required` for a workforce account without an authenticator.
 * @throws HavenError `UNAUTHORIZED` (wrong credentials, one generic message), `TOO_MANY_REQUESTS`
 *   (`data.retryAfterSeconds`), `FORBIDDEN` `mfa_code_invalid` / `mfa_code_reused`, `BAD_REQUEST`.
 */
export async function signIn(options: SignInOptions): Promise<SignInResult> {
  const { email, password, totp, auth = "bearer", ...connection } = options;
  const clientFor = (token: string) =>
    createHavenClient(auth === "bearer" ? { ...connection, token } : connection);
  const login = await createHavenClient(connection).auth.login.mutate({ email, password });

  const verify: MfaRequired["verify"] = async (code) => {
    const verified = await clientFor(login.token).auth.mfa.verify.mutate(
      "totp" in code ? { code: code.totp } : { recoveryCode: code.recoveryCode },
    );
    return {
      status: "signed_in",
      client: clientFor(verified.token),
      token: verified.token,
      expiresAt: verified.expiresAt,
      user: login.user,
    };
  };

  switch (login.mfa) {
    case "none":
      return {
        status: "signed_in",
        client: clientFor(login.token),
        token: login.token,
        expiresAt: login.expiresAt,
        user: login.user,
      };
    case "verify":
      if (totp !== undefined) return verify({ totp });
      return { status: "mfa_required", user: login.user, token: login.token, verify };
    case "enrol":
      return {
        status: "mfa_enrolment_required",
        user: login.user,
        token: login.token,
        client: clientFor(login.token),
      };
    default: {
      const unknownStep: never = login.mfa;
      throw new Error(`Unknown MFA step ${String(unknownStep)}`);
    }
  }
}

export { TRPCClientError };
