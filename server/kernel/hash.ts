import { createHash } from "node:crypto";

/**
 * SHA-256 of a UTF-8 string, as 64 lowercase hex characters. Used wherever Haven stores a digest of
 * a secret instead of the secret (session tokens, API keys, reset and invitation tokens, recovery
 * codes, throttle buckets) and for the audit hash chain. Unkeyed: only for high-entropy inputs or
 * where the digest is not a secret (OWASP ASVS 2.10.4 / 3.5.2); low-entropy PHI uses the keyed
 * blind index (`crypto/blind-index.ts`).
 */
export function sha256Hex(value: string): string {
  return createHash("sha256").update(value, "utf8").digest("hex");
}
