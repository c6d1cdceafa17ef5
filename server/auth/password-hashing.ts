import { availableParallelism } from "node:os";
import { hash, verify } from "@node-rs/argon2";
import { ZxcvbnFactory } from "@zxcvbn-ts/core";
import * as zxcvbnCommon from "@zxcvbn-ts/language-common";
import * as zxcvbnEn from "@zxcvbn-ts/language-en";
import { ValidationError } from "../kernel/errors.ts";

/**
 * argon2id at the OWASP Password Storage Cheat Sheet parameters (m = 19 MiB, t = 2, p = 1),
 * stored as a PHC string (OWASP ASVS 4.0.3 V2.4.1, V2.4.4). Changing these makes every login
 * re-hash the password it just verified ({@link needsRehash}).
 */
export const ARGON2_PARAMS = {
  /** `Algorithm.Argon2id` (a const enum, not importable under verbatimModuleSyntax). */
  algorithm: 2,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

/** NIST SP 800-63B §3.1.1.2: at least 12 characters here (15 for single-factor), at most 128. */
export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 128;

/**
 * Passwords are Unicode-normalised (NFKC) before hashing, so the same passphrase typed on two
 * keyboards verifies (NIST SP 800-63B §3.1.1.2). ASCII is unchanged by it.
 */
function normalize(password: string): string {
  return password.normalize("NFKC");
}

/**
 * At most this many argon2 computations run at once (the others wait their turn, first come first
 * served): one per CPU, at most 4 (libuv's default thread pool, where @node-rs/argon2 runs them).
 * Each holds its 19 MiB working block (`memoryCost`) while it runs, so a login burst on a 2-core
 * machine held 4 × 19 MiB although only 2 could compute; more in flight than CPUs adds memory,
 * not throughput. bench/results/optimisations.md §9.
 */
export const ARGON2_MAX_CONCURRENT = Math.max(1, Math.min(4, availableParallelism()));

/** FIFO admission of argon2 work: `run` starts at most {@link ARGON2_MAX_CONCURRENT} tasks at once. */
export class Argon2Gate {
  #running = 0;
  #waiting: (() => void)[] = [];
  /** Most tasks seen running at the same time (for tests). */
  peak = 0;

  constructor(readonly limit: number = ARGON2_MAX_CONCURRENT) {}

  /** Run `task` when a slot is free; settles as `task` does, and frees the slot either way. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    // A finishing task hands its slot straight to the first waiter, so a caller arriving in
    // between cannot take it too.
    if (this.#running < this.limit) this.#running++;
    else await new Promise<void>((ok) => this.#waiting.push(ok));
    if (this.#running > this.peak) this.peak = this.#running;
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }

  /** Tasks running now (at most `limit`). */
  get running(): number {
    return this.#running;
  }
}

const gate = new Argon2Gate();

/** Hash a password; returns the PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`). */
export function hashPassword(password: string): Promise<string> {
  return gate.run(() => hash(normalize(password), ARGON2_PARAMS));
}

/** Verify a password against a PHC string; false on mismatch or a malformed hash. */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    return await gate.run(() => verify(phc, normalize(password)));
  } catch {
    return false;
  }
}

/**
 * True when a stored PHC string was made with other parameters than {@link ARGON2_PARAMS} (or is
 * not argon2id), so the login that just verified it should store a fresh hash (ASVS 2.4.4).
 */
export function needsRehash(phc: string): boolean {
  const m = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(phc);
  if (!m) return true;
  return (
    Number(m[1]) !== ARGON2_PARAMS.memoryCost ||
    Number(m[2]) !== ARGON2_PARAMS.timeCost ||
    Number(m[3]) !== ARGON2_PARAMS.parallelism
  );
}

let dummyHash: Promise<string> | undefined;
/**
 * Spend the same work as a real verification for an unknown account, so response time does not
 * reveal which e-mails exist (OWASP ASVS 2.2.1 / Authentication Cheat Sheet).
 */
export async function verifyDummy(password: string): Promise<false> {
  dummyHash ??= hashPassword("haven-dummy-password-for-timing");
  await verifyPassword(await dummyHash, password);
  return false;
}

let zxcvbn: ZxcvbnFactory | undefined;
function estimator(): ZxcvbnFactory {
  zxcvbn ??= new ZxcvbnFactory({
    dictionary: { ...zxcvbnCommon.dictionary, ...zxcvbnEn.dictionary },
    graphs: zxcvbnCommon.adjacencyGraphs,
    translations: zxcvbnEn.translations,
    maxLength: PASSWORD_MAX_LENGTH,
  });
  return zxcvbn;
}

/** What a password may not be built from: the account's e-mail and, when known, names. */
export interface PasswordContext {
  email?: string | null;
  names?: (string | null | undefined)[];
}

function contextWords(ctx: PasswordContext): string[] {
  const raw: string[] = ["haven"];
  if (ctx.email) {
    const email = ctx.email.normalize("NFKC").toLowerCase();
    raw.push(email);
    const [local = "", domain = ""] = email.split("@");
    raw.push(local, ...local.split(/[^\p{L}\p{N}]+/u), ...domain.split("."));
  }
  for (const n of ctx.names ?? []) {
    if (!n) continue;
    const v = n.normalize("NFKC").toLowerCase();
    raw.push(v, ...v.split(/[^\p{L}\p{N}]+/u));
  }
  return [...new Set(raw.filter((w) => w.length >= 3))];
}

/** A password rejected by {@link checkPassword}: BAD_REQUEST with the field path in `data.issues`. */
export class PasswordPolicyError extends ValidationError {
  override name = "PasswordPolicyError";
  /** Read by the tRPC error formatter like zod issues. */
  readonly issues: { path: string[]; message: string }[];
  constructor(field: string, message: string) {
    super(message, "password_policy");
    this.issues = [{ path: [field], message }];
  }
}

/**
 * NIST SP 800-63B §3.1.1.2 password rules (OWASP ASVS 2.1.1, 2.1.2, 2.1.4, 2.1.7, 2.1.9): 12 to 128
 * characters (Unicode code points after NFKC), any characters allowed, no composition rules;
 * rejected when zxcvbn (offline common-password, name and word dictionaries) rates it guessable
 * (score < 3, i.e. under ~10^8 guesses) or when what remains after removing the user's own e-mail
 * and name parts is guessable.
 * @returns null when acceptable, otherwise the reason (safe to show; never echoes the password)
 */
export function checkPassword(password: string, ctx: PasswordContext = {}): string | null {
  const p = normalize(password);
  const length = [...p].length;
  if (length < PASSWORD_MIN_LENGTH)
    return `Use at least ${PASSWORD_MIN_LENGTH} characters (a passphrase of several words works well)`;
  if (length > PASSWORD_MAX_LENGTH) return `Use at most ${PASSWORD_MAX_LENGTH} characters`;
  const words = contextWords(ctx);
  const z = estimator();
  if (z.check(p, words).score < 3)
    return "This password is too common or too easy to guess; choose a longer, less predictable passphrase";
  let rest = p.toLowerCase();
  for (const w of words.sort((a, b) => b.length - a.length)) rest = rest.split(w).join("");
  if (rest.length < p.length && (rest.length < 8 || z.check(rest).score < 3))
    return "This password is built from your e-mail address or name; choose something unrelated";
  return null;
}

/**
 * {@link checkPassword} that throws. @throws PasswordPolicyError (→ BAD_REQUEST, path `field`)
 */
export function assertPasswordAcceptable(
  password: string,
  ctx: PasswordContext,
  field = "password",
): void {
  const problem = checkPassword(password, ctx);
  if (problem) throw new PasswordPolicyError(field, problem);
}
