import { readdir, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Database } from "../../db/client.ts";
import { WIRE_REFUSED_KEYS } from "../../lib/fast-superjson.ts";
import type { ServiceDeps } from "../deps.ts";
import { recordAudit, SYSTEM_ACTOR } from "../kernel/audit.ts";
import { sqlState } from "../kernel/errors.ts";
import { sha256Hex } from "../kernel/hash.ts";
import { emptyCounts, type ImportCounts, mergeCounts } from "./counts.ts";
import { describeEntry, FhirImportError } from "./errors.ts";
import { type BundleEntry, type FhirResource, isHandledType } from "./types.ts";
import { writeBundle } from "./write-bundle.ts";

export type { ImportCounts, TypeCounts } from "./counts.ts";

/**
 * FHIR R4 importer (ARCHITECTURE §6): Bundles of type batch, transaction or collection become
 * organizations, practitioners, patients (demographics sealed), clinical entries (resource sealed),
 * past appointments and care relationships.
 *
 * - One transaction per bundle: a bundle that fails writes nothing.
 * - Idempotent by FHIR id: re-import updates the row with that `fhir_id`, never duplicates it; an
 *   unchanged resource (same `source_mac`, or same plain fields for non-PHI rows) is not written.
 * - Unknown resource types are counted in `skipped` under their type and otherwise ignored.
 * - Errors are {@link FhirImportError}s whose messages hold no PHI.
 */

/** Outcome of {@link importBundle}. */
export interface BundleImportResult extends ImportCounts {
  /** Number of `Bundle.entry` items read. */
  entries: number;
  /** Wall time, milliseconds. */
  durationMs: number;
}

/** Outcome of {@link importFiles}. */
export interface ImportSummary extends ImportCounts {
  /** Number of files imported. */
  files: number;
  /** Wall time for all files, milliseconds. */
  durationMs: number;
}

export interface ImportBundleOptions {
  /** Run every check and write, then roll the transaction back (validate a file). */
  dryRun?: boolean;
  /**
   * Who runs the import (`user@host` of the operator CLI), for the audit row; default "unknown".
   * An import is a PHI write by an operator: every bundle gets one `fhir.import` audit row.
   */
  operator?: string;
}

export interface ImportFilesOptions extends ImportBundleOptions {
  /** Called with (0, total) once the files are listed, then after each file with (done, total). */
  onProgress?: (done: number, total: number) => void;
  /** Called after each file with its path and counts. */
  onFile?: (file: string, result: BundleImportResult) => void;
  /**
   * Rewrites each file's parsed JSON before it is imported (the demo seeder adds synthetic contact
   * addresses). Without it the file's text is imported as given.
   */
  prepare?: (bundle: unknown, file: string) => unknown;
}

/** The importer needs the database itself (it opens one transaction per bundle). */
export type ImportDeps = ServiceDeps & { db: Database };

const BUNDLE_TYPES = new Set(["batch", "transaction", "collection"]);
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const URN_UUID = /^urn:uuid:([0-9a-fA-F-]{36})$/;
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;

/** A validated bundle. */
export interface ParsedBundle {
  type: "batch" | "transaction" | "collection";
  entries: BundleEntry[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Validate a bundle's envelope: JSON text (string or bytes) or an already parsed object; a
 * `Bundle` of type batch, transaction or collection; every entry with a `resource` that has a
 * `resourceType`; every handled resource with an id (`resource.id`, else a `urn:uuid:` fullUrl);
 * no `__proto__`/`constructor`/`prototype` key at any depth of a resource. Resource contents are
 * checked later, field by field.
 * @throws FhirImportError ("malformed") naming the entry index and resource type only
 */
export function parseBundle(input: unknown): ParsedBundle {
  let value = input;
  if (typeof input === "string" || input instanceof Uint8Array) {
    const text = typeof input === "string" ? input : Buffer.from(input).toString("utf8");
    try {
      value = JSON.parse(text);
    } catch {
      // The SyntaxError quotes the input; never pass it on.
      throw new FhirImportError("the input is not valid JSON", "malformed");
    }
  }
  if (!isRecord(value) || value.resourceType !== "Bundle") {
    throw new FhirImportError(
      'the input is not a FHIR Bundle (resourceType must be "Bundle")',
      "malformed",
    );
  }
  const type = value.type;
  if (typeof type !== "string" || !BUNDLE_TYPES.has(type)) {
    throw new FhirImportError("Bundle.type must be batch, transaction or collection", "malformed");
  }
  if (value.entry !== undefined && !Array.isArray(value.entry)) {
    throw new FhirImportError("Bundle.entry must be an array", "malformed");
  }
  const raw: unknown[] = value.entry ?? [];
  const entries: BundleEntry[] = raw.map((item, index) => {
    if (!isRecord(item) || !isRecord(item.resource)) {
      throw new FhirImportError(`${describeEntry(index)} has no resource`, "malformed", {
        entryIndex: index,
      });
    }
    const resource = item.resource;
    const resourceType = resource.resourceType;
    if (typeof resourceType !== "string" || !RESOURCE_TYPE.test(resourceType)) {
      throw new FhirImportError(
        `${describeEntry(index)}: resource has no valid resourceType`,
        "malformed",
        {
          entryIndex: index,
        },
      );
    }
    if (hasReservedKey(resource)) {
      // Not a FHIR element name anywhere in R4, and Haven's wire format (superjson) refuses to
      // serialize such a key: stored, it would make every later read of the record fail.
      throw new FhirImportError(
        `${describeEntry(index, resourceType)} has a __proto__, constructor or prototype key`,
        "malformed",
        { entryIndex: index, resourceType },
      );
    }
    const fullUrl = typeof item.fullUrl === "string" ? item.fullUrl : undefined;
    const urnId = fullUrl ? URN_UUID.exec(fullUrl)?.[1] : undefined;
    const id = resource.id;
    let fhirId: string | undefined;
    if (typeof id === "string" && FHIR_ID.test(id)) fhirId = id;
    else if (id === undefined) fhirId = urnId;
    if (!fhirId && isHandledType(resourceType)) {
      throw new FhirImportError(
        `${describeEntry(index, resourceType)} has no valid id`,
        "malformed",
        {
          entryIndex: index,
          resourceType,
        },
      );
    }
    return { index, fullUrl, resource: resource as FhirResource, fhirId: fhirId ?? "" };
  });
  return { type: type as ParsedBundle["type"], entries };
}

/**
 * Whether any object inside `value` (at any depth) has a `__proto__`, `constructor` or `prototype`
 * key. FHIR JSON element names never take these (HL7 FHIR R4 §2.6.2: names are the element names
 * of the resource definitions); they are prototype-pollution vectors (OWASP ASVS 5.1.2), and
 * superjson refuses to serialize them (the set is {@link WIRE_REFUSED_KEYS}, shared with the
 * serializer). Iterative, so a deeply nested hostile input cannot
 * overflow the stack.
 */
function hasReservedKey(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null) continue;
    if (Array.isArray(v)) {
      for (const item of v) stack.push(item);
      continue;
    }
    for (const k of Object.keys(v)) {
      if (WIRE_REFUSED_KEYS.has(k)) return true;
      stack.push((v as Record<string, unknown>)[k]);
    }
  }
  return false;
}

/** Thrown inside the transaction to roll a dry run back. */
class DryRunRollback extends Error {}

/** Any error → a PHI-free FhirImportError (driver messages quote parameters, so they are dropped). */
function toImportError(err: unknown): FhirImportError {
  if (err instanceof FhirImportError) return err;
  const state = sqlState(err);
  if (state) {
    let constraint: unknown;
    for (let e: unknown = err, d = 0; d < 4 && isRecord(e) && constraint === undefined; d++) {
      constraint = (e as { constraint_name?: unknown }).constraint_name;
      e = (e as { cause?: unknown }).cause;
    }
    const where = typeof constraint === "string" ? `, constraint ${constraint}` : "";
    return new FhirImportError(
      `the database rejected the bundle (SQLSTATE ${state}${where})`,
      "database",
      {
        sqlState: state,
      },
    );
  }
  const name = err instanceof Error ? err.name : typeof err;
  return new FhirImportError(`the bundle could not be imported (${name})`, "internal");
}

/**
 * Import one FHIR R4 Bundle in one transaction.
 *
 * @param deps database (not a transaction), PHI crypto, clock (`now` is the import time: the
 *   fallback `recorded_at`, the past/future line for appointment status, `updated_at`)
 * @param bundle JSON text, bytes, or a parsed object
 * @param options `dryRun`: roll back after writing (counts are still reported)
 * @returns per-type counts of created / updated / unchanged / skipped rows, entry count and time (ms)
 * @throws FhirImportError when the bundle is malformed, a patient's organization cannot be
 *   determined, or the database refuses a write; nothing of the bundle is then stored
 */
export async function importBundle(
  deps: ImportDeps,
  bundle: unknown,
  options: ImportBundleOptions = {},
): Promise<BundleImportResult> {
  const started = performance.now();
  const parsed = parseBundle(bundle);
  const counts = emptyCounts();
  // SHA-256 of the input as given (text or bytes) or of its JSON: identifies the bundle, no PHI.
  const bundleDigest = sha256Hex(
    typeof bundle === "string" || bundle instanceof Uint8Array
      ? Buffer.from(bundle as string | Uint8Array).toString("utf8")
      : JSON.stringify(bundle),
  );
  const now = deps.now();
  try {
    await deps.db.transaction(async (tx) => {
      await writeBundle({ tx, crypto: deps.crypto, now, counts }, parsed.entries);
      // In the same transaction as the writes: the bundle and its audit row commit together
      // (45 CFR 164.312(b)). Counts per type only, never names, paths or identifiers.
      await recordAudit(
        tx,
        SYSTEM_ACTOR,
        {
          action: "fhir.import",
          outcome: "allowed",
          resourceType: "Bundle",
          resourceId: bundleDigest,
          details: {
            via: "cli",
            operator: options.operator ?? "unknown",
            entries: parsed.entries.length,
            ...flatCounts(counts),
          },
        },
        now,
      );
      if (options.dryRun) throw new DryRunRollback();
    });
  } catch (err) {
    if (!(err instanceof DryRunRollback)) throw toImportError(err);
  }
  return { ...counts, entries: parsed.entries.length, durationMs: performance.now() - started };
}

/** Counts as flat audit details: `created.Patient: 1`, `skipped.Claim: 4` … */
function flatCounts(counts: ImportCounts): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ["created", "updated", "unchanged", "skipped"] as const) {
    for (const [type, n] of Object.entries(counts[k])) out[`${k}.${type}`] = n;
  }
  return out;
}

/** `"resourceType": "Patient"` anywhere in the text: such files are imported last. */
const HAS_PATIENT = /"resourceType"\s*:\s*"Patient"/;

async function expandPaths(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (p: string) => {
    const abs = resolve(p);
    if (!seen.has(abs)) {
      seen.add(abs);
      out.push(p);
    }
  };
  const walk = async (dir: string): Promise<void> => {
    const items = await readdir(dir, { withFileTypes: true });
    items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const item of items) {
      const p = join(dir, item.name);
      if (item.isDirectory()) await walk(p);
      else if (item.isFile() && item.name.toLowerCase().endsWith(".json")) add(p);
    }
  };
  for (const p of paths) {
    try {
      if ((await stat(p)).isDirectory()) await walk(p);
      else add(p);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      throw new FhirImportError(
        `the input path cannot be read${typeof code === "string" ? ` (${code})` : ""}`,
        "malformed",
        { file: p },
      );
    }
  }
  return out;
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why = typeof code === "string" ? ` (${code})` : "";
    throw new FhirImportError(`the file cannot be read${why}`, "malformed", { file });
  }
}

/**
 * Import FHIR bundle files: each path is a file, or a directory searched recursively for `*.json`.
 * Files without a Patient (organization and practitioner bundles) go first, so conditional
 * references from patient bundles find their targets; each file is then one
 * {@link importBundle} call (one transaction). Stops at the first failing file; files before it
 * stay imported.
 *
 * @returns counts summed over all files, the number of files and the total time (ms)
 * @throws FhirImportError with `file` set to the failing path (the message holds no PHI)
 */
export async function importFiles(
  deps: ImportDeps,
  paths: string[],
  options: ImportFilesOptions = {},
): Promise<ImportSummary> {
  const started = performance.now();
  const files = await expandPaths(paths);
  const first: string[] = [];
  const last: string[] = [];
  for (const file of files) {
    const text = await readText(file);
    (HAS_PATIENT.test(text) ? last : first).push(file);
  }
  const ordered = [...first, ...last];
  const summary: ImportSummary = { ...emptyCounts(), files: 0, durationMs: 0 };
  const bundleOptions: ImportBundleOptions = {
    ...(options.dryRun ? { dryRun: true } : {}),
    ...(options.operator ? { operator: options.operator } : {}),
  };
  options.onProgress?.(0, ordered.length);
  for (const [i, file] of ordered.entries()) {
    let result: BundleImportResult;
    const text = await readText(file);
    try {
      const input = options.prepare ? options.prepare(JSON.parse(text) as unknown, file) : text;
      result = await importBundle(deps, input, bundleOptions);
    } catch (err) {
      const wrapped = toImportError(err);
      wrapped.file = file;
      throw wrapped;
    }
    mergeCounts(summary, result);
    summary.files++;
    options.onFile?.(file, result);
    options.onProgress?.(i + 1, ordered.length);
  }
  summary.durationMs = performance.now() - started;
  return summary;
}
