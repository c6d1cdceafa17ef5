import { Secret, TOTP } from "otpauth";
import { createHavenClient } from "../client-sdk/index.ts";

const url = process.env.HAVEN_URL ?? "http://127.0.0.1:3000";
const secret = process.argv[2]; // the clinician's TOTP secret from .haven/demo-logins.txt
if (!secret) throw new Error("usage: npx tsx examples/clinician-mfa.ts <TOTP secret>");

const first = await createHavenClient({ url }).auth.login.mutate({
  email: "clinician@haven.demo",
  password: "demo-clinician-passphrase",
});
console.log("after the password:", first.mfa); // "verify": a TOTP code is still needed
const code = new TOTP({ secret: Secret.fromBase32(secret) }).generate(); // what `npm run totp` prints
const { token } = await createHavenClient({ url, token: first.token }).auth.mfa.verify.mutate({
  code,
});
const clinician = createHavenClient({ url, token });
const me = await clinician.auth.me.query();
console.log(`${me.user.role}, MFA verified: ${me.mfaVerified}`);
