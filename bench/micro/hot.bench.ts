/**
 * Micro-benchmarks (vitest bench, `npm run bench:micro`): envelope encrypt/decrypt, blind index,
 * and the response serialization of a 63-entry record (superjson vs serializeFast vs JSON).
 * The record is the demo patient's shape: Synthea resources from the shipped bundle with Dates.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import superjson from "superjson";
import { bench, describe } from "vitest";
import { serializeFast } from "../../lib/fast-superjson.ts";
import { PhiCrypto } from "../../server/crypto/phi.ts";
import { DEMO_BUNDLE_DIR, DEMO_PATIENT_FHIR_ID } from "../../server/demo/seed.ts";
import { freshKeys } from "../suite/setup.ts";

const crypto = new PhiCrypto(freshKeys().keyring);
const file = readdirSync(DEMO_BUNDLE_DIR).find((f) => f.includes(DEMO_PATIENT_FHIR_ID)) ?? "";
const bundle = JSON.parse(readFileSync(join(DEMO_BUNDLE_DIR, file), "utf8")) as {
  entry: { resource: Record<string, unknown> }[];
};
const resources = bundle.entry.map((e) => e.resource).slice(0, 63);
const observation = resources.find((r) => r.resourceType === "Observation") ?? resources[0];
const sealed = crypto.seal("clinical_entries", "body", "row-1", observation);
const record = {
  id: "01a236fa-b659-741c-9354-be3c36dd1c87",
  organizationId: "01a236fa-b62e-7190-a1a7-f78acb3d8a58",
  version: 1,
  access: "care_relationship",
  demographics: {
    name: { family: "F", given: ["G"], prefix: [], suffix: [] },
    birthDate: "2000-01-01",
  },
  entries: resources.map((resource, i) => ({
    id: `id-${i}`,
    kind: "observation",
    recordedAt: new Date(1_700_000_000_000 + i),
    source: "fhir-import",
    resource,
  })),
  entriesTruncated: false,
};

describe("envelope (AES-256-GCM, one FHIR Observation)", () => {
  bench("encrypt", () => {
    crypto.seal("clinical_entries", "body", "row-1", observation);
  });
  bench("decrypt", () => {
    crypto.open("clinical_entries", "body", "row-1", sealed);
  });
});

describe("blind index (HMAC-SHA256)", () => {
  bench("patient.mrn, normalised", () => {
    crypto.index("patient.mrn", "BENCH-12345");
  });
  bench("family + birth date", () => {
    crypto.familyBirth("Schowalter414", "2009-04-29");
  });
});

describe(`serialize the ${record.entries.length}-entry record`, () => {
  bench("superjson.stringify", () => {
    superjson.stringify(record);
  });
  bench("serializeFast + JSON.stringify", () => {
    JSON.stringify(serializeFast(record));
  });
  bench("JSON.stringify (no Date meta)", () => {
    JSON.stringify(record);
  });
});
