import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { auditEvents, patients } from "../../db/schema/index.ts";
import {
  loginWithMfa,
  makeOrganization,
  makePatient,
  makeUser,
  sampleDemographics,
  type TestUser,
} from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { outcome } from "./test-utils.ts";

/**
 * Issue 13, High: "staff can turn a patient record into a patient login they control". The probe:
 * MFA-verified staff invite a patient to an address they own, read the birth date in
 * `patients.get`, accept, and hold a patient session that reads the SSN and clinical bodies.
 * Required: no workforce member (staff or admin) can end up holding a patient's session; an
 * invitation to an address not on file notifies the contact on file and is audited as a
 * disclosure-relevant event (ADR 0008). Everything here goes over HTTP.
 */
let h: Harness;
let url: string;
let org: string;
let staff: TestUser;
let admin: TestUser;

beforeAll(async () => {
  h = await createHarness();
  url = await h.listen();
  org = await makeOrganization(h.deps);
  staff = await makeUser(h.deps, "staff", org);
  admin = await makeUser(h.deps, "admin", org);
});
afterAll(async () => {
  await h?.close();
});

const client = (token?: string) => createHavenClient({ url, ...(token ? { token } : {}) });

function mailTo(kind: string, to: string) {
  return [...h.mail.messages].reverse().find((m) => m.kind === kind && m.to === to);
}
function tokenIn(text: string | undefined): string {
  const token = /#token=([A-Za-z0-9_-]{43})/.exec(text ?? "")?.[1];
  if (!token) throw new Error("no token in mail");
  return token;
}
function codeIn(text: string | undefined): string {
  const code = /^\s{4}([0-9A-Z]{8})$/m.exec(text ?? "")?.[1];
  if (!code) throw new Error("no code in mail");
  return code;
}

describe.each([
  ["staff", () => staff],
  ["admin", () => admin],
] as const)("the insider takeover, as %s", (_role, who) => {
  it("an invitation to the insider's own address cannot be accepted without the code sent to the contact on file", async () => {
    const demo = sampleDemographics({ birthDate: "1969-07-20" });
    const p = await makePatient(h.deps, org, demo);
    const insiderToken = await loginWithMfa(h, url, who());
    const insider = client(insiderToken);
    const mine = `insider-${p.id.slice(-6)}@evil.test`;

    await insider.auth.invitations.create.mutate({ role: "patient", patientId: p.id, email: mine });
    // Everything the insider can get: the invitation mail (own mailbox) and the birth date.
    const token = tokenIn(mailTo("invitation", mine)?.text);
    const record = await insider.patients.get.query({ patientId: p.id });
    expect(record.demographics.birthDate).toBe("1969-07-20");

    // The contact on file is told, and holds the code the insider never sees.
    const notice = mailTo("invitation_notice", demo.email ?? "");
    expect(notice?.text).toContain("i•••@evil.test");
    const code = codeIn(notice?.text);
    expect(JSON.stringify(record)).not.toContain(code);
    expect(mailTo("invitation", mine)?.text).not.toContain(code);

    for (const contactCode of [undefined, "AAAAAAAA", "00000000"]) {
      expect(
        await outcome(
          client().auth.invitations.accept.mutate({
            token,
            birthDate: "1969-07-20",
            ...(contactCode ? { contactCode } : {}),
            password: "insider takeover passphrase 7",
          }),
        ),
      ).toBe("UNAUTHORIZED:invitation_invalid");
    }
    const [row] = await h.deps.db.select().from(patients).where(eq(patients.id, p.id));
    expect(row?.userId).toBeNull();

    // Audited as disclosure-relevant: in the patient's accounting of disclosures.
    const [offFile] = await h.deps.db
      .select()
      .from(auditEvents)
      .where(
        and(eq(auditEvents.action, "auth.invitation_off_file"), eq(auditEvents.patientId, p.id)),
      );
    expect(offFile?.actorUserId).toBe(who().userId);
    const adminToken = await loginWithMfa(h, url, admin);
    const accounting = await client(adminToken).audit.forPatient.query({ patientId: p.id });
    expect(accounting.items.map((i) => i.action)).toContain("auth.invitation_off_file");
    expect(accounting.items.find((i) => i.action === "auth.invitation_off_file")?.basis).toBe(
      "invitation_to_address_not_on_file",
    );
    const failures = await h.deps.db
      .select()
      .from(auditEvents)
      .where(
        and(eq(auditEvents.action, "auth.invitation_failed"), eq(auditEvents.patientId, p.id)),
      );
    expect(failures.map((f) => f.details?.reason)).toEqual([
      "contact_code_mismatch",
      "contact_code_mismatch",
      "contact_code_mismatch",
    ]);

    // The genuine patient's own invitation is not blocked by the insider's.
    await insider.auth.invitations.create.mutate({ role: "patient", patientId: p.id });
    const own = tokenIn(mailTo("invitation", demo.email ?? "")?.text);
    const accepted = await client().auth.invitations.accept.mutate({
      token: own,
      birthDate: "1969-07-20",
      password: "the real patient's passphrase 1",
    });
    expect((await client(accepted.token).auth.me.query()).user.patientId).toBe(p.id);
  });

  it("the patient who asked for another address accepts with the code from the contact on file", async () => {
    const demo = sampleDemographics({ birthDate: "1980-01-31" });
    const p = await makePatient(h.deps, org, demo);
    const insiderToken = await loginWithMfa(h, url, who());
    const newAddress = `new-${p.id.slice(-6)}@example.test`;
    await client(insiderToken).auth.invitations.create.mutate({
      role: "patient",
      patientId: p.id,
      email: newAddress,
    });
    const token = tokenIn(mailTo("invitation", newAddress)?.text);
    const code = codeIn(mailTo("invitation_notice", demo.email ?? "")?.text);
    const accepted = await client().auth.invitations.accept.mutate({
      token,
      birthDate: "1980-01-31",
      contactCode: code.toLowerCase(),
      password: "a patient with a new mailbox 4",
    });
    expect(accepted.user.role).toBe("patient");
  });
});

it("a record with no contact e-mail on file cannot be invited to any address", async () => {
  const p = await makePatient(h.deps, org, sampleDemographics({ email: null }));
  const staffToken = await loginWithMfa(h, url, staff);
  expect(
    await outcome(
      client(staffToken).auth.invitations.create.mutate({
        role: "patient",
        patientId: p.id,
        email: "anyone@evil.test",
      }),
    ),
  ).toBe("BAD_REQUEST");
  expect(h.mail.messages.some((m) => m.to === "anyone@evil.test")).toBe(false);
});
