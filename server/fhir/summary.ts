import type { BundleImportResult, ImportSummary } from "./importer.ts";

/** Text rendering of import counts for the CLI (counts only: no PHI). */

function sumCounts(c: Record<string, number>): number {
  return Object.values(c).reduce((a, b) => a + b, 0);
}

/** One line of counts for a file: `12 created, 0 updated, 3 unchanged, 26 skipped (40 ms)`. */
export function describeResult(r: BundleImportResult): string {
  return (
    `${sumCounts(r.created)} created, ${sumCounts(r.updated)} updated, ` +
    `${sumCounts(r.unchanged)} unchanged, ${sumCounts(r.skipped)} skipped (${Math.round(r.durationMs)} ms)`
  );
}

/**
 * The summary as an aligned text table: one row per type (sorted) with created / updated /
 * unchanged / skipped, a total row, then the file count and total time in ms.
 */
export function formatSummary(summary: ImportSummary, dryRun = false): string {
  const types = [
    ...new Set([
      ...Object.keys(summary.created),
      ...Object.keys(summary.updated),
      ...Object.keys(summary.unchanged),
      ...Object.keys(summary.skipped),
    ]),
  ].sort();
  const header = ["Type", "Created", "Updated", "Unchanged", "Skipped"];
  const rows = types.map((t) => [
    t,
    String(summary.created[t] ?? 0),
    String(summary.updated[t] ?? 0),
    String(summary.unchanged[t] ?? 0),
    String(summary.skipped[t] ?? 0),
  ]);
  rows.push([
    "Total",
    String(sumCounts(summary.created)),
    String(sumCounts(summary.updated)),
    String(sumCounts(summary.unchanged)),
    String(sumCounts(summary.skipped)),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ");
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [
    line(header),
    rule,
    ...rows.slice(0, -1).map(line),
    rule,
    line(rows[rows.length - 1] ?? []),
    "",
    `${summary.files} file(s) in ${Math.round(summary.durationMs)} ms${dryRun ? " (dry run: rolled back)" : ""}`,
  ].join("\n");
}
