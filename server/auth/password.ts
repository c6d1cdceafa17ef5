import { hash, verify } from "@node-rs/argon2";

/**
 * argon2id at the OWASP Password Storage Cheat Sheet parameters (m = 19 MiB, t = 2, p = 1),
 * stored as a PHC string (OWASP ASVS 4.0.3 V2.4.1, V2.4.4).
 */
export const ARGON2_PARAMS = {
  /** `Algorithm.Argon2id` (a const enum, not importable under verbatimModuleSyntax). */
  algorithm: 2,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

/** Hash a password; returns the PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`). */
export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_PARAMS);
}

/** Verify a password against a PHC string; false on mismatch or a malformed hash. */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    return await verify(phc, password);
  } catch {
    return false;
  }
}

let dummyHash: Promise<string> | undefined;
/**
 * Spend the same work as a real verification for an unknown account, so response time does not
 * reveal which e-mails exist (OWASP ASVS V2.2 / Authentication Cheat Sheet).
 */
export async function verifyDummy(password: string): Promise<false> {
  dummyHash ??= hashPassword("haven-dummy-password-for-timing");
  await verifyPassword(await dummyHash, password);
  return false;
}
