import { randomFillSync } from "node:crypto";
import { v7 } from "uuid";

/**
 * Random bytes drawn per refill: 256 UUIDs' worth. Node's own `crypto.randomUUID()` caches entropy
 * the same way (128 UUIDs) unless told not to; the bytes are still from the OS CSPRNG.
 */
const POOL_BYTES = 4096;
const pool = new Uint8Array(POOL_BYTES);
const view = new DataView(pool.buffer);
let offset = POOL_BYTES;
/** The monotonic state uuid's own `v7()` keeps (it is bypassed once options are passed). */
let lastMs = Number.NEGATIVE_INFINITY;
let seq = 0;

/**
 * A UUIDv7 (RFC 9562 §5.7) as a lowercase string: 48-bit Unix ms timestamp, then a 31-bit counter
 * seeded randomly each millisecond and incremented within it (RFC 9562 §6.2 method 1, exactly as
 * the `uuid` package's `v7()` does), then random bits. Values from one process are strictly
 * increasing, also within one millisecond.
 *
 * Why not `uuid`'s `v7()` as is: since uuid 12 its generator calls `crypto.getRandomValues` for
 * every UUID, one `getrandom` system call each; Haven mints one per request (the request id) and
 * more per write, and on the 2-core bench machine that call was 13% of `/healthz`'s CPU
 * (bench/results/optimisations.md §13). Here 16 bytes come from a 4 KiB pool refilled from the
 * same CSPRNG (`randomFillSync`), and `v7()` formats them with the same state rule.
 */
export function uuidv7(): string {
  if (offset + 16 > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const random = pool.subarray(offset, offset + 16);
  const now = Date.now();
  if (now > lastMs) {
    lastMs = now;
    // uuid's v7Sequence: bytes 6..9 of the random block, top bit cleared (room to count up).
    seq = view.getUint32(offset + 6) & 0x7fffffff;
  } else {
    seq = (seq + 1) | 0;
    if (seq === 0) lastMs++;
  }
  offset += 16;
  return v7({ random, msecs: lastMs, seq });
}
