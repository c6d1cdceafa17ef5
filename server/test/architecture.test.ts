import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { analyse, formatReport, type Violation } from "./architecture.ts";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

describe("Haven's import graph (docs/architecture.md)", () => {
  it("has no upward import, no domain importing transport, no router doing service work", () => {
    const report = analyse(REPO);
    // The message lists every offending edge with file:line, so a failure says what to move.
    expect(report.violations, formatReport(report)).toEqual([]);
    expect(report.upwardImports).toBe(0);
    // A sanity floor: the scanner really read the tree (an empty graph would pass vacuously).
    expect(report.files).toBeGreaterThan(150);
    expect(report.edges.length).toBeGreaterThan(1000);
  });
});

describe("the checker catches each kind of upward import", () => {
  let dir: string | null = null;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
  });

  /** Write a tiny tree (path → source) and return the rules the checker reports on it. */
  function rulesOf(files: Record<string, string>): Violation["rule"][] {
    dir = mkdtempSync(join(tmpdir(), "haven-arch-"));
    for (const [path, src] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), src);
    }
    return analyse(dir).violations.map((v) => v.rule);
  }

  it("accepts a tree that points down", () => {
    expect(
      rulesOf({
        "server/kernel/errors.ts": "export class E {}\n",
        "server/b/service.ts": 'import { E } from "../kernel/errors.ts";\n',
        "server/b/router.ts":
          'import { router } from "../trpc.ts";\nimport { s } from "./service.ts";\nimport { x } from "../a/service.ts";\n',
        "server/trpc.ts": 'import { initTRPC } from "@trpc/server";\n',
        "workers/w/cli.ts": 'import { c } from "@haven/client";\n',
      }),
    ).toEqual([]);
  });

  it("a kernel file importing a domain", () => {
    expect(
      rulesOf({
        "server/kernel/audit.ts": 'import { x } from "../patients/service.ts";\n',
        "server/patients/service.ts": "export const x = 1;\n",
      }),
    ).toEqual(["kernel-imports-domain"]);
  });

  it("a domain importing trpc.ts, context.ts, http.ts, @trpc/* or fastify", () => {
    expect(
      rulesOf({
        "server/trpc.ts": "export const t = 1;\n",
        "server/context.ts": "export type C = 1;\n",
        "server/http.ts": "export const h = 1;\n",
        "server/a/service.ts": [
          'import { t } from "../trpc.ts";',
          'import type { C } from "../context.ts";',
          'import { h } from "../http.ts";',
          'import { TRPCError } from "@trpc/server";',
          'import type { FastifyInstance } from "fastify";',
          "",
        ].join("\n"),
      }),
    ).toEqual(Array(5).fill("domain-imports-transport"));
  });

  it("workers/ or admin/ importing server/ (even a type), the SDK importing server internals", () => {
    expect(
      rulesOf({
        "server/router.ts": "export type AppRouter = 1;\n",
        "server/a/service.ts": "export const x = 1;\n",
        "workers/reminders/cli.ts": 'import type { AppRouter } from "../../server/router.ts";\n',
        "admin/src/app.ts": 'import { x } from "../../server/a/service.ts";\n',
        "client-sdk/index.ts":
          'import type { AppRouter } from "../server/router.ts";\nimport { x } from "../server/a/service.ts";\n',
      }),
    ).toEqual(Array(3).fill("consumer-imports-server"));
  });

  it("a router touching the database or writing audit rows", () => {
    expect(
      rulesOf({
        "db/schema/index.ts": "export const users = 1;\n",
        "server/kernel/audit.ts": "export const recordAudit = 1;\n",
        "server/a/router.ts": [
          'import { eq } from "drizzle-orm";',
          'import { users } from "../../db/schema/index.ts";',
          'import { recordAudit } from "../kernel/audit.ts";',
          'import type { AuditActor } from "../kernel/audit.ts";',
          "",
        ].join("\n"),
      }),
    ).toEqual(Array(3).fill("router-does-service-work"));
  });

  it("a router reaching into another domain's internals or router", () => {
    expect(
      rulesOf({
        "server/a/router.ts":
          'import { r } from "../b/router.ts";\nimport { q } from "../b/queries.ts";\nimport { s } from "../b/schemas.ts";\n',
        "server/b/router.ts": "export const r = 1;\n",
        "server/b/queries.ts": "export const q = 1;\n",
        "server/b/schemas.ts": "export const s = 1;\n",
      }),
    ).toEqual(Array(2).fill("router-imports-domain-internals"));
  });

  it("domains importing each other in a cycle, and product code importing test code", () => {
    expect(
      rulesOf({
        "server/a/service.ts": 'import { b } from "../b/service.ts";\n',
        "server/b/service.ts":
          'import { a } from "../a/service.ts";\nimport { f } from "../test/factory.ts";\n',
        "server/test/factory.ts": "export const f = 1;\n",
      }).sort(),
    ).toEqual(["domain-cycle", "upward-import"]);
  });
});
