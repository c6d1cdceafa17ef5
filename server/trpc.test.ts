import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createHavenClient, isHavenError } from "../client-sdk/index.ts";
import { buildServer } from "./http.ts";
import type { AppRouter } from "./router.ts";
import { createHarness, type Harness } from "./test/harness.ts";
import {
  assertEveryProcedureDeclaresAccess,
  protectedProcedure,
  publicProcedure,
  router,
  toTRPCError,
} from "./trpc.ts";

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  await h?.close();
});

describe("startup guard: every procedure declares meta({ roles })", () => {
  it("refuses a router with a procedure that has no meta", async () => {
    const bad = router({
      fine: publicProcedure.meta({ roles: "public", phi: false }).query(() => 1),
      nested: router({ forgotten: protectedProcedure.query(() => 2) }),
    });
    expect(() => assertEveryProcedureDeclaresAccess(bad)).toThrow(/nested\.forgotten/);
    await expect(
      buildServer({
        router: bad as unknown as AppRouter,
        services: h.services,
        database: h.testDb.handle,
        allowedOrigins: [],
      }),
    ).rejects.toThrow(/Procedures without meta/);
  });

  it("refuses an empty roles list", () => {
    const bad = router({
      nobody: protectedProcedure.meta({ roles: [], phi: false }).query(() => 1),
    });
    expect(() => assertEveryProcedureDeclaresAccess(bad)).toThrow(/nobody/);
  });
});

describe("error formatting over HTTP", () => {
  it("an internal error returns a generic message with the request id, never the message or stack", async () => {
    const boom = router({
      boom: publicProcedure
        .meta({ roles: "public", phi: false })
        .input(z.object({}).optional())
        .query(() => {
          throw new Error("SELECT secret FROM patients WHERE ssn = '999-12-3456'");
        }),
    });
    const app = await buildServer({
      router: boom as unknown as AppRouter,
      services: h.services,
      database: h.testDb.handle,
      allowedOrigins: [],
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    try {
      const addr = app.server.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      const res = await fetch(`http://127.0.0.1:${port}/trpc/boom`);
      expect(res.status).toBe(500);
      const body = await res.text();
      expect(body).not.toContain("999-12-3456");
      expect(body).not.toContain("SELECT");
      expect(body).not.toMatch(/"stack"/);
      expect(body).toMatch(/Internal error\. Quote request id [0-9a-f-]{36}/);
      // and the log line carries neither the message nor the SSN
      expect(h.logs.text()).toContain("procedure failed");
      expect(h.logs.text()).not.toContain("999-12-3456");
    } finally {
      await app.close();
    }
  });

  it("maps database constraint errors to CONFLICT / BAD_REQUEST", () => {
    const unique = Object.assign(new Error("duplicate key value violates unique constraint"), {
      code: "23505",
    });
    const overlap = {
      message: "wrapped",
      cause: Object.assign(new Error("conflicting key value"), { code: "23P01" }),
    };
    const badText = Object.assign(new Error("invalid input syntax for type uuid"), {
      code: "22P02",
    });
    expect(toTRPCError(unique).code).toBe("CONFLICT");
    expect(toTRPCError(overlap).code).toBe("CONFLICT");
    expect(toTRPCError(badText).code).toBe("BAD_REQUEST");
    expect(toTRPCError(new Error("anything else")).code).toBe("INTERNAL_SERVER_ERROR");
  });

  it("UNAUTHORIZED (no session) and FORBIDDEN (role) are distinct", async () => {
    const url = await h.listen();
    try {
      await createHavenClient({ url }).patients.search.query({ mrn: "1" });
      expect.unreachable();
    } catch (err) {
      expect(isHavenError(err) && err.data?.code).toBe("UNAUTHORIZED");
    }
  });
});
