// The live run (issue 11, 3d): plain `node out/live.js` against a real Haven. Sign in with TOTP,
// find the patient, list slots, book, cancel. Configuration comes from the environment; prints
// one JSON line with what happened.
import { isHavenError, signIn } from "@haven/client";

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`missing ${name}`);
  return v;
}

const url = env("HAVEN_URL");
const result = await signIn({
  url,
  email: env("HAVEN_EMAIL"),
  password: env("HAVEN_PASSWORD"),
  totp: env("HAVEN_TOTP"),
});
if (result.status !== "signed_in") throw new Error(`sign-in stopped at ${result.status}`);
const haven = result.client;

const hits = await haven.patients.search.query({ mrn: env("HAVEN_MRN") });
const patient = hits[0];
if (!patient) throw new Error("patient not found");

const from = new Date(env("HAVEN_FROM"));
const to = new Date(from.getTime() + 7 * 24 * 3600 * 1000);
const { slots } = await haven.appointments.slots.query({
  practitionerId: env("HAVEN_PRACTITIONER"),
  from,
  to,
});
const slot = slots[0];
if (!slot) throw new Error("no free slot");

const booked = await haven.appointments.book.mutate({
  practitionerId: env("HAVEN_PRACTITIONER"),
  patientId: patient.id,
  startsAt: slot.startsAt,
  reason: "follow-up",
});

// Booking the same slot again is a typed CONFLICT.
let conflict: string | null = null;
try {
  await haven.appointments.book.mutate({
    practitionerId: env("HAVEN_PRACTITIONER"),
    patientId: patient.id,
    startsAt: slot.startsAt,
  });
} catch (e) {
  if (isHavenError(e, "CONFLICT")) conflict = e.data.reason;
  else throw e;
}

const cancelled = await haven.appointments.cancel.mutate({
  appointmentId: booked.id,
  version: booked.version,
  reason: "patient called",
});

console.log(
  JSON.stringify({
    role: result.user.role,
    patientId: patient.id,
    slotStartsAt: slot.startsAt.toISOString(),
    startsAtIsDate: booked.startsAt instanceof Date,
    bookedId: booked.id,
    bookedStatus: booked.status,
    conflict,
    cancelledStatus: cancelled.status,
  }),
);
