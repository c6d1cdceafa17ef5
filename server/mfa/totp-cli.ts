import { totpCode } from "./service.ts";

/**
 * `npm run totp -- <base32 secret>`: print the current TOTP code (RFC 6238, 30 s) for a secret, and
 * how long it stays valid. For the demo accounts (secrets in `.haven/demo-logins.txt`) or any test
 * enrolment; an authenticator app does the same.
 */
const secret = (process.argv[2] ?? "").replace(/\s+/g, "").toUpperCase();
if (!/^[A-Z2-7]{16,}=*$/.test(secret)) {
  console.error("usage: npm run totp -- <base32 secret>   (see .haven/demo-logins.txt)");
  process.exit(2);
}
const now = new Date();
const left = 30 - (Math.floor(now.getTime() / 1000) % 30);
console.log(totpCode(secret, now));
console.error(`(valid for ${left} more s; each code is accepted once)`);
