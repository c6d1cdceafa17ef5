import {
  createTRPCClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  TRPCClientError,
} from "@trpc/client";
import type { inferRouterInputs, inferRouterOutputs } from "@trpc/server";
import { EventSource, type FetchLike } from "eventsource";
import superjson from "superjson";
import type { AppRouter } from "../server/router.ts";

export type { AppRouter };
/** Input type of every procedure, e.g. `RouterInputs["patients"]["get"]`. */
export type RouterInputs = inferRouterInputs<AppRouter>;
/** Output type of every procedure, e.g. `RouterOutputs["patients"]["get"]`. */
export type RouterOutputs = inferRouterOutputs<AppRouter>;

export interface HavenClientOptions {
  /** Base URL of the Haven server, e.g. `http://127.0.0.1:3000` (the client appends `/trpc`). */
  url: string;
  /** Session token from `auth.login` / `auth.mfa.verify`, or an API key (`hk_…`); sent as `Authorization: Bearer`. */
  token?: string;
  /** Custom fetch (tests, proxies). */
  fetch?: typeof fetch;
}

/**
 * A typed Haven client over HTTP batching with superjson.
 *
 * Queries are sent as POST (`methodOverride`), so search inputs such as family name and birth date
 * never appear in URLs, proxy logs or browser history (ADR 0003). Subscriptions
 * (`appointments.onChange`) use Server-Sent Events with the same bearer token in a header; they
 * resume after the last received event id when the connection drops.
 *
 * @example
 * const haven = createHavenClient({ url: "http://127.0.0.1:3000" });
 * const { token } = await haven.auth.login.mutate({ email, password });
 * const me = createHavenClient({ url, token });
 * await me.patients.get.query({ patientId });
 */
export function createHavenClient(options: HavenClientOptions) {
  const base = options.url.replace(/\/+$/, "");
  const batch = httpBatchLink({
    url: `${base}/trpc`,
    transformer: superjson,
    methodOverride: "POST",
    maxItems: 20,
    headers: () => (options.token ? { authorization: `Bearer ${options.token}` } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  // Subscriptions over SSE. The token travels in the Authorization header through a fetch-based
  // EventSource, never in the URL (ARCHITECTURE §3: connectionParams would put it in the query
  // string, and so into proxy logs); without a token the browser's cookie authenticates.
  const sseFetch: FetchLike = (url, init) =>
    (options.fetch ?? fetch)(url, {
      ...init,
      headers: {
        ...init.headers,
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
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

export type HavenClient = ReturnType<typeof createHavenClient>;

/** Narrow an unknown error to a Haven/tRPC client error (has `.data.code`, `.data.issues`). */
export function isHavenError(err: unknown): err is TRPCClientError<AppRouter> {
  return err instanceof TRPCClientError;
}

export { TRPCClientError };
