import { describe, expect, it } from "vitest";
import { type Actor, ROLES, type Role } from "../auth/roles.ts";
import { canReadPatient, type PatientFacts, patientViewFor } from "./policy.ts";

const ORG = "00000000-0000-7000-8000-00000000000a";
const OTHER_ORG = "00000000-0000-7000-8000-00000000000b";
const PATIENT = "00000000-0000-7000-8000-000000000001";
const OTHER_PATIENT = "00000000-0000-7000-8000-000000000002";

function actor(role: Role, extra: Partial<Actor> = {}): Actor {
  return {
    userId: "00000000-0000-7000-8000-0000000000ff",
    role,
    organizationId: ORG,
    sessionId: "s",
    patientId: null,
    practitionerId: null,
    ...extra,
  };
}
const facts = (extra: Partial<PatientFacts> = {}): PatientFacts => ({
  patientId: PATIENT,
  organizationId: ORG,
  activeCareRelationship: false,
  ...extra,
});

describe("canReadPatient — every role × relevant fact", () => {
  const table: [string, Actor, PatientFacts, boolean | string][] = [
    ["patient self", actor("patient", { patientId: PATIENT }), facts(), true],
    ["patient other", actor("patient", { patientId: OTHER_PATIENT }), facts(), "not_self"],
    ["patient without record", actor("patient"), facts(), "not_self"],
    [
      "clinician with care",
      actor("clinician", { practitionerId: "p" }),
      facts({ activeCareRelationship: true }),
      true,
    ],
    [
      "clinician without care",
      actor("clinician", { practitionerId: "p" }),
      facts(),
      "no_care_relationship",
    ],
    [
      "clinician same org, no care",
      actor("clinician", { practitionerId: "p" }),
      facts({ organizationId: ORG }),
      "no_care_relationship",
    ],
    [
      "clinician without practitioner",
      actor("clinician"),
      facts({ activeCareRelationship: true }),
      "no_care_relationship",
    ],
    ["staff own org", actor("staff"), facts(), true],
    ["staff other org", actor("staff"), facts({ organizationId: OTHER_ORG }), "other_organization"],
    ["admin own org", actor("admin"), facts(), true],
    ["admin other org", actor("admin"), facts({ organizationId: OTHER_ORG }), "other_organization"],
    ["service", actor("service"), facts(), "role"],
  ];
  it.each(table)("%s", (_name, a, f, expected) => {
    const d = canReadPatient(a, f);
    if (expected === true) expect(d).toEqual({ allowed: true });
    else expect(d).toEqual({ allowed: false, rule: expected });
  });

  it("covers every role", () => {
    const covered = new Set(table.map(([, a]) => a.role));
    expect([...covered].sort()).toEqual([...ROLES].sort());
  });
});

describe("patientViewFor — minimum necessary", () => {
  it.each(ROLES)("%s has a defined view", (role) => {
    expect(patientViewFor(role)).toBeDefined();
  });
  it("staff and admin never get clinical bodies; service gets nothing", () => {
    expect(patientViewFor("staff").clinicalBodies).toBe(false);
    expect(patientViewFor("admin").clinicalBodies).toBe(false);
    expect(patientViewFor("service")).toEqual({
      demographics: false,
      clinicalBodies: false,
      appointmentReasons: false,
    });
    expect(patientViewFor("clinician").clinicalBodies).toBe(true);
    expect(patientViewFor("patient").clinicalBodies).toBe(true);
  });
});
