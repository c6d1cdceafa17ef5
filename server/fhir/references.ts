import { inArray, or } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { organizations, patients, practitioners } from "../../db/schema/index.ts";
import type { PhiCrypto } from "../crypto/phi.ts";
import { NPI_SYSTEM, SYNTHEA_SYSTEM } from "./map.ts";
import type { BundleEntry, FhirIdentifier } from "./types.ts";

/**
 * Reference resolution for the importer, in two steps:
 *
 * 1. {@link BundleIndex.target}: a reference string → what it points at, resolved inside the bundle
 *    first (`urn:uuid:` full URLs, relative `Type/id`, absolute URLs, conditional
 *    `Type?identifier=system|value`), else a description of what to look for in the database.
 * 2. {@link Directory.resolve}: that target → a database row, among rows loaded in one batch per
 *    table by {@link loadDirectory} (plus the rows the running import has just created).
 */

/** A reference string, parsed. */
export type ParsedReference =
  /** `urn:uuid:…`, `urn:oid:…` or a URL without a `Type/id` tail: matched against fullUrls only. */
  | { kind: "url"; url: string }
  /** `Patient/123`, `https://host/fhir/Patient/123`, optionally with `/_history/n`. */
  | { kind: "literal"; resourceType: string; id: string; url: string }
  /** `Practitioner?identifier=system|value` (system "" when the token has no `|`). */
  | { kind: "conditional"; resourceType: string; system: string; value: string };

const TYPE = "[A-Z][A-Za-z]+";
const FHIR_ID = "[A-Za-z0-9\\-.]{1,64}";
const LITERAL = new RegExp(`(?:^|/)(${TYPE})/(${FHIR_ID})(?:/_history/[^/]+)?$`);
const CONDITIONAL = new RegExp(`^(${TYPE})\\?(.+)$`);

/**
 * Parse a FHIR reference string.
 * @returns null for contained (`#id`) references, empty strings and conditional references on
 *   anything but `identifier`
 */
export function parseReference(reference: string): ParsedReference | null {
  const ref = reference.trim();
  if (ref === "" || ref.startsWith("#")) return null;
  const cond = CONDITIONAL.exec(ref);
  if (cond) {
    const [, resourceType, query] = cond as unknown as [string, string, string];
    for (const param of query.split("&")) {
      const eq = param.indexOf("=");
      if (eq < 0 || param.slice(0, eq) !== "identifier") continue;
      let token: string;
      try {
        token = decodeURIComponent(param.slice(eq + 1));
      } catch {
        return null;
      }
      const bar = token.indexOf("|");
      const system = bar < 0 ? "" : token.slice(0, bar);
      const value = bar < 0 ? token : token.slice(bar + 1);
      return value ? { kind: "conditional", resourceType, system, value } : null;
    }
    return null;
  }
  if (ref.startsWith("urn:")) return { kind: "url", url: ref };
  const lit = LITERAL.exec(ref);
  if (lit) {
    const [, resourceType, id] = lit as unknown as [string, string, string];
    return { kind: "literal", resourceType, id, url: ref };
  }
  return { kind: "url", url: ref };
}

/** What a reference points at once the bundle has been consulted. */
export type RefTarget =
  /** A resource by FHIR id; `resourceType` null for a `urn:uuid:` that is not in the bundle. */
  | { by: "id"; resourceType: string | null; fhirId: string; inBundle: boolean }
  /** A conditional reference the bundle could not answer: look the identifier up in the database. */
  | { by: "identifier"; resourceType: string; system: string; value: string };

const URN_UUID = /^urn:uuid:([0-9a-fA-F-]{36})$/;

/** Lookup tables over one bundle's entries. */
export class BundleIndex {
  private readonly byFullUrl = new Map<string, BundleEntry>();
  private readonly byTypeId = new Map<string, BundleEntry>();
  private readonly byIdentifier = new Map<string, BundleEntry>();

  constructor(entries: readonly BundleEntry[]) {
    for (const entry of entries) {
      const type = entry.resource.resourceType;
      if (entry.fullUrl) this.byFullUrl.set(entry.fullUrl, entry);
      this.byTypeId.set(`${type}/${entry.fhirId}`, entry);
      const ids = Array.isArray(entry.resource.identifier) ? entry.resource.identifier : [];
      for (const ident of ids as FhirIdentifier[]) {
        if (typeof ident?.value !== "string" || ident.value === "") continue;
        const system = typeof ident.system === "string" ? ident.system : "";
        this.setFirst(`${type}|${system}|${ident.value}`, entry);
        this.setFirst(`${type}||${ident.value}`, entry);
      }
    }
  }

  private setFirst(key: string, entry: BundleEntry): void {
    if (!this.byIdentifier.has(key)) this.byIdentifier.set(key, entry);
  }

  /** The bundle entry a reference names, if it is in this bundle. */
  entry(reference: string | undefined): BundleEntry | undefined {
    const parsed = reference === undefined ? null : parseReference(reference);
    if (!parsed) return undefined;
    switch (parsed.kind) {
      case "url":
        return this.byFullUrl.get(parsed.url);
      case "literal":
        return (
          this.byFullUrl.get(parsed.url) ?? this.byTypeId.get(`${parsed.resourceType}/${parsed.id}`)
        );
      case "conditional":
        return this.byIdentifier.get(`${parsed.resourceType}|${parsed.system}|${parsed.value}`);
    }
  }

  /**
   * Resolve a reference against the bundle.
   * @returns the bundle resource it names (`inBundle: true`); else, for a `urn:uuid:`, a literal or
   *   a conditional reference, what to look up in the database; null when it cannot name anything
   */
  target(reference: string | undefined): RefTarget | null {
    if (reference === undefined) return null;
    const parsed = parseReference(reference);
    if (!parsed) return null;
    const hit = this.entry(reference);
    if (hit)
      return {
        by: "id",
        resourceType: hit.resource.resourceType,
        fhirId: hit.fhirId,
        inBundle: true,
      };
    switch (parsed.kind) {
      case "url": {
        const m = URN_UUID.exec(parsed.url);
        return m?.[1] ? { by: "id", resourceType: null, fhirId: m[1], inBundle: false } : null;
      }
      case "literal":
        return { by: "id", resourceType: parsed.resourceType, fhirId: parsed.id, inBundle: false };
      case "conditional":
        return {
          by: "identifier",
          resourceType: parsed.resourceType,
          system: parsed.system,
          value: parsed.value,
        };
    }
  }
}

/** Row types the resolver hands out (the columns the importer compares). */
export interface OrganizationRow {
  id: string;
  fhirId: string | null;
  name: string;
}
export interface PractitionerRow {
  id: string;
  fhirId: string | null;
  npi: string | null;
  name: string;
  organizationId: string | null;
}
export interface PatientRow {
  id: string;
  /** The source FHIR id (in memory only; the table stores its blind index). */
  fhirId: string | null;
  organizationId: string;
  sourceMac: string | null;
  version: number;
}

export type ResolvableType = "Organization" | "Practitioner" | "Patient";

/** What to load from the database before resolving: FHIR ids per table and practitioner NPIs. */
export class Lookups {
  readonly organizations = new Set<string>();
  readonly practitioners = new Set<string>();
  readonly practitionerNpis = new Set<string>();
  readonly patients = new Set<string>();

  private ids(type: ResolvableType): Set<string> {
    switch (type) {
      case "Organization":
        return this.organizations;
      case "Practitioner":
        return this.practitioners;
      case "Patient":
        return this.patients;
    }
  }

  /** Note a row that must be loaded to resolve `target` as a `type`. */
  add(target: RefTarget | null, type: ResolvableType): void {
    if (!target || (target.resourceType !== null && target.resourceType !== type)) return;
    if (target.by === "id") {
      this.ids(type).add(target.fhirId);
    } else if (target.system === NPI_SYSTEM && type === "Practitioner") {
      this.practitionerNpis.add(target.value);
    } else if (target.system === SYNTHEA_SYSTEM) {
      this.ids(type).add(target.value);
    }
  }

  /** Note a FHIR id (of a resource in the bundle) whose row must be loaded. */
  addId(type: ResolvableType, fhirId: string): void {
    this.ids(type).add(fhirId);
  }
}

/** Rows by FHIR id (and practitioners by NPI): loaded rows plus those the import creates. */
export class Directory {
  readonly organizations = new Map<string, OrganizationRow>();
  readonly practitioners = new Map<string, PractitionerRow>();
  readonly practitionersByNpi = new Map<string, PractitionerRow>();
  readonly patients = new Map<string, PatientRow>();

  addOrganization(fhirId: string, row: OrganizationRow): void {
    this.organizations.set(fhirId, row);
  }
  /** Register a practitioner under a FHIR id (which may differ from `row.fhirId`) and its NPI. */
  addPractitioner(fhirId: string, row: PractitionerRow): void {
    this.practitioners.set(fhirId, row);
    if (row.npi && !this.practitionersByNpi.has(row.npi)) this.practitionersByNpi.set(row.npi, row);
  }
  addPatient(fhirId: string, row: PatientRow): void {
    this.patients.set(fhirId, row);
  }

  /** The row a target names, if it names a `type` the directory holds. */
  resolve(target: RefTarget | null, type: "Organization"): OrganizationRow | undefined;
  resolve(target: RefTarget | null, type: "Practitioner"): PractitionerRow | undefined;
  resolve(target: RefTarget | null, type: "Patient"): PatientRow | undefined;
  resolve(
    target: RefTarget | null,
    type: ResolvableType,
  ): OrganizationRow | PractitionerRow | PatientRow | undefined {
    if (!target || (target.resourceType !== null && target.resourceType !== type)) return undefined;
    const byId = (id: string) =>
      type === "Organization"
        ? this.organizations.get(id)
        : type === "Practitioner"
          ? this.practitioners.get(id)
          : this.patients.get(id);
    if (target.by === "id") return byId(target.fhirId);
    if (target.system === NPI_SYSTEM && type === "Practitioner") {
      return this.practitionersByNpi.get(target.value);
    }
    if (target.system === SYNTHEA_SYSTEM) return byId(target.value);
    return undefined;
  }
}

/** Split a list into chunks (keeps statements under the 65 535-parameter limit). */
export function chunked<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const LOOKUP_CHUNK = 5000;

/**
 * Load every organization, practitioner and patient row named in `lookups`: one query per table
 * (per 5000 keys), all sent before the first answer is awaited (postgres.js pipelines them on the
 * transaction's connection: one round trip instead of three). Patients are found by the blind
 * index of their FHIR id (`crypto`).
 * @throws the driver's error on database failure (callers wrap it; it may quote parameters)
 */
export async function loadDirectory(
  db: Executor,
  crypto: PhiCrypto,
  lookups: Lookups,
): Promise<Directory> {
  const dir = new Directory();
  const orgQueries = chunked([...lookups.organizations], LOOKUP_CHUNK).map((ids) =>
    db
      .select({ id: organizations.id, fhirId: organizations.fhirId, name: organizations.name })
      .from(organizations)
      .where(inArray(organizations.fhirId, ids))
      .execute(),
  );
  const practIds = [...lookups.practitioners];
  const npis = [...lookups.practitionerNpis];
  const practQueries = [];
  for (let i = 0; i < Math.max(practIds.length, npis.length); i += LOOKUP_CHUNK) {
    const ids = practIds.slice(i, i + LOOKUP_CHUNK);
    const npiChunk = npis.slice(i, i + LOOKUP_CHUNK);
    const conditions = [
      ...(ids.length > 0 ? [inArray(practitioners.fhirId, ids)] : []),
      ...(npiChunk.length > 0 ? [inArray(practitioners.npi, npiChunk)] : []),
    ];
    practQueries.push(
      db
        .select({
          id: practitioners.id,
          fhirId: practitioners.fhirId,
          npi: practitioners.npi,
          name: practitioners.name,
          organizationId: practitioners.organizationId,
        })
        .from(practitioners)
        .where(or(...conditions))
        .execute(),
    );
  }
  const patientQueries = chunked([...lookups.patients], LOOKUP_CHUNK).map((ids) => {
    const byIndex = new Map(ids.map((fhirId) => [crypto.patientFhirId(fhirId), fhirId]));
    const rows = db
      .select({
        id: patients.id,
        fhirIndex: patients.fhirId,
        organizationId: patients.organizationId,
        sourceMac: patients.sourceMac,
        version: patients.version,
      })
      .from(patients)
      .where(inArray(patients.fhirId, [...byIndex.keys()]))
      .execute();
    return { byIndex, rows };
  });
  // Every query is on its way; a failure is reported (first in send order) once all have settled.
  const all = [...orgQueries, ...practQueries, ...patientQueries.map((q) => q.rows)];
  const settled = await Promise.allSettled(all);
  for (const r of settled) if (r.status === "rejected") throw r.reason;
  for (const rows of await Promise.all(orgQueries)) {
    for (const row of rows) if (row.fhirId) dir.addOrganization(row.fhirId, row);
  }
  for (const rows of await Promise.all(practQueries)) {
    for (const row of rows) {
      if (row.fhirId) dir.practitioners.set(row.fhirId, row);
      if (row.npi) dir.practitionersByNpi.set(row.npi, row);
    }
  }
  for (const { byIndex, rows } of patientQueries) {
    for (const { fhirIndex, ...row } of await rows) {
      const fhirId = fhirIndex ? byIndex.get(fhirIndex) : undefined;
      if (fhirId) dir.addPatient(fhirId, { ...row, fhirId });
    }
  }
  return dir;
}
