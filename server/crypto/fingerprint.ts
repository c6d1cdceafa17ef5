import { createHmac } from "node:crypto";
import { eq } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { keyMetadata, users } from "../../db/schema/index.ts";
import { KeyError, type Keyring } from "./keyring.ts";
import type { PhiCrypto } from "./phi.ts";

/** `key_metadata.name` of the blind-index key's fingerprint. */
export const BLIND_INDEX_KEY_NAME = "blind_index";

/**
 * Public fingerprint of the blind-index key: HMAC-SHA-256 keyed by the key itself over a fixed
 * label, base64url. Equal keys give equal fingerprints; the fingerprint reveals nothing usable
 * about the key (it is one more PRF output under it, like any stored blind index).
 */
export function blindIndexFingerprint(keyring: Keyring): string {
  return createHmac("sha256", keyring.blindIndexKey)
    .update("haven-key-fingerprint:v1:blind-index", "utf8")
    .digest("base64url");
}

/** The stored fingerprint of the key every blind index was built with, or null if none yet. */
export async function storedBlindIndexFingerprint(db: Executor): Promise<string | null> {
  const [row] = await db
    .select({ fingerprint: keyMetadata.fingerprint })
    .from(keyMetadata)
    .where(eq(keyMetadata.name, BLIND_INDEX_KEY_NAME))
    .limit(1);
  return row?.fingerprint ?? null;
}

/** Record `keyring`'s blind-index key as the one the stored indexes use (after a reindex). */
export async function recordBlindIndexFingerprint(
  db: Executor,
  keyring: Keyring,
  now: Date,
): Promise<void> {
  const fingerprint = blindIndexFingerprint(keyring);
  await db
    .insert(keyMetadata)
    .values({ name: BLIND_INDEX_KEY_NAME, fingerprint, updatedAt: now })
    .onConflictDoUpdate({ target: keyMetadata.name, set: { fingerprint, updatedAt: now } });
}

/** What {@link checkBlindIndexKey} found. */
export type IndexKeyCheck = "match" | "recorded";

/**
 * Startup guard: the blind-index key this process holds must be the one the stored indexes were
 * built with, or every search and login by e-mail would silently miss.
 *
 * - A stored fingerprint must equal this key's.
 * - With none stored yet (new database, or one from before fingerprints), one account's
 *   `email_index` is recomputed from its decrypted e-mail as a probe; if it matches (or there is no
 *   account) this key's fingerprint is recorded.
 * @returns "match" or "recorded"
 * @throws KeyError telling the operator to run `npm run keys -- reindex` (names no key material)
 */
export async function checkBlindIndexKey(
  db: Executor,
  crypto: PhiCrypto,
  now: Date,
): Promise<IndexKeyCheck> {
  const mine = blindIndexFingerprint(crypto.keyring);
  const stored = await storedBlindIndexFingerprint(db);
  if (stored !== null) {
    if (stored === mine) return "match";
    throw new KeyError(
      "HAVEN_BLIND_INDEX_KEY differs from the key the stored search indexes were built with. " +
        "Run `npm run keys -- reindex` with the new key (see docs/key-management.md), or restore the previous key.",
    );
  }
  const [probe] = await db
    .select({ id: users.id, email: users.email, emailIndex: users.emailIndex })
    .from(users)
    .limit(1);
  if (probe) {
    let expected: string;
    try {
      expected = crypto.index(
        "user.email",
        crypto.open<string>("users", "email", probe.id, probe.email),
      );
    } catch {
      throw new KeyError(
        "cannot decrypt stored account e-mails with the configured PHI keys; check HAVEN_PHI_KEYS",
      );
    }
    if (expected !== probe.emailIndex) {
      throw new KeyError(
        "HAVEN_BLIND_INDEX_KEY does not match the stored search indexes. " +
          "Run `npm run keys -- reindex` with the new key (see docs/key-management.md), or restore the previous key.",
      );
    }
  }
  await db
    .insert(keyMetadata)
    .values({ name: BLIND_INDEX_KEY_NAME, fingerprint: mine, updatedAt: now })
    .onConflictDoNothing();
  // Another instance may have recorded a different key in between: re-check.
  const after = await storedBlindIndexFingerprint(db);
  if (after !== mine) {
    throw new KeyError(
      "another Haven instance recorded a different HAVEN_BLIND_INDEX_KEY; all instances must share one key",
    );
  }
  return "recorded";
}

/**
 * Public fingerprints of every loaded PHI key, keyed by key id: HMAC-SHA-256 keyed by the key over
 * a label naming the id, base64url. Two processes holding the same id with different material get
 * different fingerprints, so a server "holding k2" means holding the same k2.
 */
export function phiKeyFingerprints(keyring: Keyring): Record<string, string> {
  const out: Record<string, string> = {};
  for (const id of keyring.keyIds()) {
    out[id] = createHmac("sha256", keyring.key(id))
      .update(`haven-key-fingerprint:v1:phi:${id}`, "utf8")
      .digest("base64url");
  }
  return out;
}
