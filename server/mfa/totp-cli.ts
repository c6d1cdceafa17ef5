import { totpCode } from "./service.ts";

/**
 * `npm run totp -- <base32 secret>`: print the current TOTP code (RFC 6238, 30 s) for a secret, and
 * how long it stays valid. For the demo accounts (secrets in `.haven/demo-logins.txt`) or any test
 * enrolment; an authenticator app does the same.
 */
const raw = process.argv[2];
const secret = (raw ?? "").replace(/\s+/g, "").toUpperCase();
const problem = base32Problem(secret, raw === undefined);
if (problem) {
  console.error(
    `totp: ${problem}. Usage: npm run totp -- <base32 secret>   (see .haven/demo-logins.txt)`,
  );
  process.exit(2);
}
const now = new Date();
const left = 30 - (Math.floor(now.getTime() / 1000) % 30);
console.log(totpCode(secret, now));
console.error(`(valid for ${left} more s; each code is accepted once)`);

/**
 * What is wrong with a TOTP secret, in one phrase, or null when it is valid base32 (RFC 4648 §6:
 * letters A-Z and digits 2-7, optional `=` padding; at least 16 characters = 80 bits, RFC 4226 §4).
 */
function base32Problem(value: string, missing: boolean): string | null {
  if (missing || value === "") return "no secret given";
  const body = value.replace(/=+$/, "");
  const bad = [...new Set(body.replace(/[A-Z2-7]/g, ""))];
  if (bad.length > 0) {
    return `the secret is not base32: it contains ${bad.map((c) => JSON.stringify(c)).join(", ")} (base32 uses only the letters A-Z and the digits 2-7)`;
  }
  if (body.length < 16) {
    return `the secret is too short: ${body.length} base32 characters, at least 16 needed (80 bits)`;
  }
  return null;
}
