import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { Keyring } from "./keyring.ts";

/**
 * Versioned AES-256-GCM envelope for PHI at rest (HIPAA 45 CFR 164.312(a)(2)(iv), OWASP ASVS 6.2).
 *
 * Format (ASCII, stored in a `text` column): `hv1:<keyId>:<iv>:<ciphertext+tag>`, with iv (96 bits,
 * random per value) and ciphertext in base64url. The associated data binds the value to its place:
 * `hv1|<keyId>|<table>.<column>|<rowId>`, so a ciphertext copied to another row, column or table,
 * or relabelled with another key id, fails authentication instead of decrypting.
 */
export const ENVELOPE_VERSION = "hv1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Where a value lives; part of the associated data. */
export interface CipherContext {
  table: string;
  column: string;
  rowId: string;
}

/** Thrown when a value cannot be decrypted (tampered, moved, unknown key). Never carries plaintext. */
export class DecryptionError extends Error {
  override name = "DecryptionError";
}

function aad(keyId: string, ctx: CipherContext): Buffer {
  return Buffer.from(
    `${ENVELOPE_VERSION}|${keyId}|${ctx.table}.${ctx.column}|${ctx.rowId}`,
    "utf8",
  );
}

/** IVs drawn per call to the CSPRNG (each refill is a fresh buffer, never rewritten). */
const IV_POOL_IVS = 256;
let ivPool = Buffer.alloc(0);
let ivOffset = 0;

/**
 * A fresh random 96-bit GCM nonce. Drawn from a pool filled by `randomBytes` 256 IVs at a time:
 * the same CSPRNG output as one `randomBytes(12)` per seal, without its ~10 µs per call, which
 * was ~2.5 % of a FHIR import (bench/results/optimisations.md §10). No IV is handed out twice.
 */
function nextIv(): Buffer {
  if (ivOffset + IV_BYTES > ivPool.length) {
    ivPool = randomBytes(IV_BYTES * IV_POOL_IVS);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + IV_BYTES);
  ivOffset += IV_BYTES;
  return iv;
}

/**
 * Encrypt a UTF-8 string under the keyring's active key.
 * @returns envelope string `hv1:keyId:iv:ct`
 */
export function encryptString(keyring: Keyring, ctx: CipherContext, plaintext: string): string {
  const keyId = keyring.activeKeyId;
  const iv = nextIv();
  const cipher = createCipheriv("aes-256-gcm", keyring.key(keyId), iv, {
    authTagLength: TAG_BYTES,
  });
  cipher.setAAD(aad(keyId, ctx));
  const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
  return `${ENVELOPE_VERSION}:${keyId}:${iv.toString("base64url")}:${ct.toString("base64url")}`;
}

/** Key id named by an envelope, without decrypting it. @throws DecryptionError if malformed */
export function envelopeKeyId(envelope: string): string {
  return parseEnvelope(envelope).keyId;
}

function parseEnvelope(envelope: string): { keyId: string; iv: Buffer; ct: Buffer } {
  const parts = envelope.split(":");
  if (parts.length !== 4 || parts[0] !== ENVELOPE_VERSION) {
    throw new DecryptionError("unrecognised envelope format");
  }
  const [, keyId, ivPart, ctPart] = parts as [string, string, string, string];
  const iv = Buffer.from(ivPart, "base64url");
  const ct = Buffer.from(ctPart, "base64url");
  if (iv.length !== IV_BYTES || ct.length < TAG_BYTES)
    throw new DecryptionError("truncated envelope");
  return { keyId, iv, ct };
}

/**
 * Decrypt an envelope produced by {@link encryptString} for the same context.
 * @throws DecryptionError when the key is unknown, the value was altered or moved to another place
 */
export function decryptString(keyring: Keyring, ctx: CipherContext, envelope: string): string {
  const { keyId, iv, ct } = parseEnvelope(envelope);
  let key: Buffer;
  try {
    key = keyring.key(keyId);
  } catch {
    throw new DecryptionError(`envelope names key "${keyId}", which is not loaded`);
  }
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad(keyId, ctx));
    decipher.setAuthTag(ct.subarray(ct.length - TAG_BYTES));
    return Buffer.concat([
      decipher.update(ct.subarray(0, ct.length - TAG_BYTES)),
      decipher.final(),
    ]).toString("utf8");
  } catch {
    throw new DecryptionError(`authentication failed for ${ctx.table}.${ctx.column}`);
  }
}

/** Encrypt a JSON-serialisable value. */
export function encryptJson(keyring: Keyring, ctx: CipherContext, value: unknown): string {
  return encryptString(keyring, ctx, JSON.stringify(value));
}

/** Decrypt an envelope holding JSON. @throws DecryptionError */
export function decryptJson<T>(keyring: Keyring, ctx: CipherContext, envelope: string): T {
  const text = decryptString(keyring, ctx, envelope);
  try {
    return JSON.parse(text) as T;
  } catch {
    // JSON.parse's SyntaxError quotes its input, which here is plaintext PHI.
    throw new DecryptionError(`${ctx.table}.${ctx.column} does not hold JSON`);
  }
}
