import { inArray } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, expect, it } from "vitest";
import { auditEvents } from "../../db/schema/index.ts";
import { makeOrganization, makeUser } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { insertAuditRows } from "./audit.ts";

/**
 * `insertAuditRows`: the one-parameter multi-row INSERT (`jsonb_to_recordset`) stores exactly what
 * drizzle's per-parameter single-row INSERT stores, column by column, for awkward values too.
 */
let h: Harness;
beforeAll(async () => {
  h = await createHarness({ maxConnections: 4 });
});
afterAll(async () => {
  await h?.close();
});

it("stores the same columns as the single-row INSERT, nulls, quotes and unicode included", async () => {
  const org = await makeOrganization(h.deps);
  const user = await makeUser(h.deps, "service", org);
  const at = new Date("2031-02-03T04:05:06.789Z");
  const variants: Omit<typeof auditEvents.$inferInsert, "id" | "occurredAt">[] = [
    {
      actorUserId: user.userId,
      actorRole: "service" as const,
      sessionId: "sess'\"\\x",
      organizationId: org,
      action: "reminder.complete",
      resourceType: "Reminder",
      resourceId: uuidv7(),
      patientId: null,
      outcome: "error" as const,
      reason: "quote ' and \" and \\ and ünïcødé ✓ and a lone surrogate \uD800 here",
      ip: "::ffff:127.0.0.1",
      requestId: "req-1",
      details: { outcome: "sent", attempt: 2, ok: false, none: null, text: "a\"b'c\n" },
    },
    {
      actorUserId: null,
      actorRole: null,
      sessionId: null,
      organizationId: null,
      action: "access.denied",
      resourceType: null,
      resourceId: null,
      patientId: null,
      outcome: "denied" as const,
      reason: null,
      ip: null,
      requestId: null,
      details: null,
    },
    {
      actorUserId: user.userId,
      actorRole: "admin" as const,
      sessionId: null,
      organizationId: org,
      action: "reminder.claim",
      resourceType: "Reminder",
      resourceId: "x",
      patientId: null,
      outcome: "allowed" as const,
      reason: null,
      ip: "10.0.0.1",
      requestId: null,
      details: {},
    },
  ];
  const many = variants.map((v) => ({ ...v, id: uuidv7(), occurredAt: at }));
  const single = variants.map((v) => ({ ...v, id: uuidv7(), occurredAt: at }));
  await insertAuditRows(h.deps.db, many);
  for (const r of single) await insertAuditRows(h.deps.db, [r]);
  const read = async (ids: string[]) => {
    const rows = await h.deps.db.select().from(auditEvents).where(inArray(auditEvents.id, ids));
    const byId = new Map(rows.map((r) => [r.id, r]));
    return ids.map((id) => {
      const { id: _id, ...rest } = byId.get(id) ?? { id };
      return rest;
    });
  };
  const fromMany = await read(many.map((r) => r.id));
  const fromSingle = await read(single.map((r) => r.id));
  expect(fromMany).toEqual(fromSingle);
  expect(fromMany[0]).toMatchObject({
    occurredAt: at,
    reason: "quote ' and \" and \\ and ünïcødé ✓ and a lone surrogate \uFFFD here",
  });
  expect(fromMany[1]).toMatchObject({ details: null, actorRole: null });
});
