import { isTrackedEnvelope, type TrackedEnvelope, tracked } from "@trpc/server";
import { z } from "zod";

/**
 * Output validation for tracked subscriptions (the tRPC docs' `zAsyncIterable`, zod 4): accepts an
 * async iterable of `tracked(id, data)` envelopes and validates every yielded `data` against
 * `schema`, so a subscription's events pass through the same explicit whitelist as query outputs.
 */
export function zTrackedAsyncIterable<TIn, TOut>(schema: z.ZodType<TOut, TIn>) {
  return z
    .custom<AsyncIterable<TrackedEnvelope<TIn>>>(
      (v) => typeof v === "object" && v !== null && Symbol.asyncIterator in v,
    )
    .transform(async function* (iterable): AsyncGenerator<TrackedEnvelope<TOut>, void, unknown> {
      const iterator = iterable[Symbol.asyncIterator]();
      try {
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
          if (!isTrackedEnvelope(next.value)) throw new TypeError("expected a tracked() event");
          const [id, data] = next.value;
          yield tracked(id, await schema.parseAsync(data));
        }
      } finally {
        await iterator.return?.();
      }
    });
}
