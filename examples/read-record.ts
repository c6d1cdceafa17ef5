import { createHavenClient } from "../client-sdk/index.ts";

const url = process.env.HAVEN_URL ?? "http://127.0.0.1:3000";
const { token } = await createHavenClient({ url }).auth.login.mutate({
  email: "patient@haven.demo",
  password: "demo-patient-passphrase",
});
const haven = createHavenClient({ url, token });
const { user } = await haven.auth.me.query();
if (!user.patientId) throw new Error("this account is not linked to a patient record");
const record = await haven.patients.get.query({ patientId: user.patientId });
const { given, family } = record.demographics.name;
console.log(`${given.join(" ")} ${family}: ${record.entries.length} clinical entries`);
