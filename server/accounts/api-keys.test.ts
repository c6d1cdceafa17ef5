import { eq } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createHavenClient } from "../../client-sdk/index.ts";
import { apiKeys, auditEvents, users } from "../../db/schema/index.ts";
import { advance, auditRows, outcome } from "../auth/test-utils.ts";
import { buildServer } from "../http.ts";
import { type AppRouter, appRouter } from "../router.ts";
import {
  loginWithMfa,
  makeOrganization,
  makePatient,
  makeServiceApiKey,
  makeUser,
} from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { assertEveryProcedureDeclaresAccess, protectedProcedure, router } from "../trpc.ts";
import { createApiKey } from "./api-keys.ts";

/**
 * API keys for the reminder cron (OWASP ASVS 2.10, 3.5.2): created by an admin, shown once, stored
 * hashed, named, scoped, revocable, last-used time; used as `Authorization: Bearer hk_…` through
 * the client SDK, resolving to a `service` actor with its own user id.
 */
let h: Harness;
let url: string;
let cronApp: FastifyInstance;
let cronUrl: string;
let org: string;

/** Stand-in for the reminder procedures (the cron's only door): callable by `service` with scope `reminders`. */
const cronRouter = router({
  whoami: protectedProcedure
    .meta({ roles: ["service"], phi: false, scope: "reminders" })
    .input(z.strictObject({}).optional())
    .query(({ ctx }) => ({
      userId: ctx.actor.userId,
      role: ctx.actor.role,
      keyId: ctx.actor.apiKeyId,
    })),
});

beforeAll(async () => {
  h = await createHarness();
  url = await h.listen();
  cronApp = await buildServer({
    router: cronRouter as unknown as AppRouter,
    services: h.services,
    database: h.testDb.handle,
    allowedOrigins: [],
  });
  await cronApp.listen({ host: "127.0.0.1", port: 0 });
  const addr = cronApp.server.address();
  cronUrl = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  org = await makeOrganization(h.deps);
});
afterAll(async () => {
  await cronApp?.close();
  await h?.close();
});

async function whoami(key: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${cronUrl}/trpc/whoami`, {
    headers: { authorization: `Bearer ${key}` },
  });
  return { status: res.status, body: await res.text() };
}

describe("API keys", () => {
  it("an admin creates a key (shown once, stored hashed), the cron authenticates with it, the admin revokes it", async () => {
    const admin = await makeUser(h.deps, "admin", org);
    const adminClient = createHavenClient({ url, token: await loginWithMfa(h, url, admin) });
    const { key, info } = await adminClient.auth.apiKeys.create.mutate({
      name: "reminder cron",
      scopes: ["reminders"],
    });
    expect(key).toMatch(/^hk_[A-Za-z0-9_-]{43}$/);
    expect(info).toMatchObject({
      name: "reminder cron",
      scopes: ["reminders"],
      lastUsedAt: null,
      createdBy: admin.userId,
    });
    expect(key.startsWith(info.prefix)).toBe(true);
    const [row] = await h.deps.db.select().from(apiKeys).where(eq(apiKeys.id, info.id));
    expect(JSON.stringify(row)).not.toContain(key.slice(3));
    const listed = await adminClient.auth.apiKeys.list.query();
    expect(JSON.stringify(listed)).not.toContain(key.slice(9));
    // the key's service user: role service, no usable password
    const [svc] = await h.deps.db.select().from(users).where(eq(users.id, info.userId));
    expect(svc?.role).toBe("service");

    const r = await whoami(key);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).result.data.json).toEqual({
      userId: info.userId,
      role: "service",
      keyId: info.id,
    });
    const [used] = await h.deps.db.select().from(apiKeys).where(eq(apiKeys.id, info.id));
    expect(used?.lastUsedAt?.getTime()).toBe(h.clock.now.getTime());

    // last-used is written at most once a minute, then moves with the clock
    const firstUse = used?.lastUsedAt?.getTime();
    advance(h, 30_000);
    await whoami(key);
    expect(
      (
        await h.deps.db.select().from(apiKeys).where(eq(apiKeys.id, info.id))
      )[0]?.lastUsedAt?.getTime(),
    ).toBe(firstUse);
    advance(h, 31_000);
    await whoami(key);
    expect(
      (
        await h.deps.db.select().from(apiKeys).where(eq(apiKeys.id, info.id))
      )[0]?.lastUsedAt?.getTime(),
    ).toBe(h.clock.now.getTime());

    await adminClient.auth.apiKeys.revoke.mutate({ keyId: info.id });
    expect((await whoami(key)).status).toBe(401);
    expect((await auditRows(h, "auth.api_key_created", admin.userId)).at(-1)?.resourceId).toBe(
      info.id,
    );
    expect((await auditRows(h, "auth.api_key_revoked", admin.userId)).at(-1)?.resourceId).toBe(
      info.id,
    );
    expect(JSON.stringify(await h.deps.db.select().from(auditEvents))).not.toContain(key.slice(3));
  });

  it("only an MFA-verified admin may manage keys", async () => {
    const staffToken = await loginWithMfa(h, url, await makeUser(h.deps, "staff", org));
    expect(
      await outcome(
        createHavenClient({ url, token: staffToken }).auth.apiKeys.create.mutate({
          name: "x",
          scopes: ["reminders"],
        }),
      ),
    ).toBe("FORBIDDEN");
    const admin = await makeUser(h.deps, "admin", org);
    const { token } = await createHavenClient({ url }).auth.login.mutate({
      email: admin.email,
      password: admin.password,
    });
    expect(
      await outcome(
        createHavenClient({ url, token }).auth.apiKeys.create.mutate({
          name: "x",
          scopes: ["reminders"],
        }),
      ),
    ).toBe("FORBIDDEN:mfa_required");
  });

  it("a key works through the typed client SDK, and never reaches PHI or session procedures", async () => {
    const { key } = await makeServiceApiKey(h.deps, org);
    const p = await makePatient(h.deps, org);
    const cron = createHavenClient({ url, token: key });
    expect(await outcome(cron.patients.get.query({ patientId: p.id }))).toBe("FORBIDDEN");
    expect(await outcome(cron.auth.me.query())).toBe("FORBIDDEN");
    const denied = await h.deps.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.action, "access.denied"));
    expect(denied.some((d) => d.sessionId?.startsWith("apikey:"))).toBe(true);
  });

  it("a key without the procedure's scope is refused; unknown, expired and disabled keys are anonymous", async () => {
    const noScope = await createApiKey(
      h.deps,
      { organizationId: org, name: "none", scopes: [], createdBy: null },
      null,
    );
    const r = await whoami(noScope.key);
    expect(r.status).toBe(403);
    expect(r.body).toContain("api_key_scope");
    expect((await whoami(`hk_${"A".repeat(43)}`)).status).toBe(401);
    const expiring = await createApiKey(
      h.deps,
      {
        organizationId: org,
        name: "short",
        scopes: ["reminders"],
        createdBy: null,
        expiresAt: new Date(h.clock.now.getTime() + 60_000),
      },
      null,
    );
    expect((await whoami(expiring.key)).status).toBe(200);
    advance(h, 60_000);
    expect((await whoami(expiring.key)).status).toBe(401);
    const disabled = await makeServiceApiKey(h.deps, org);
    await h.deps.db
      .update(users)
      .set({ disabledAt: h.clock.now })
      .where(eq(users.id, disabled.userId));
    expect((await whoami(disabled.key)).status).toBe(401);
    // a service account cannot sign in with a password
    const [svc] = await h.deps.db.select().from(users).where(eq(users.id, disabled.userId));
    expect(svc?.passwordHash.startsWith("$argon2")).toBe(false);
  });

  it("the startup guard refuses a service-callable procedure without a scope", () => {
    const bad = router({
      leak: protectedProcedure.meta({ roles: ["service"], phi: false }).query(() => 1),
    });
    expect(() => assertEveryProcedureDeclaresAccess(bad)).toThrow(/leak/);
    expect(() => assertEveryProcedureDeclaresAccess(appRouter)).not.toThrow();
  });
});
