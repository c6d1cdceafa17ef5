import { eq } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { sessions } from "../../db/schema/index.ts";
import { buildServer } from "../http.ts";
import { type AppRouter, appRouter } from "../router.ts";
import { makeOrganization, makeUser, type TestUser } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { protectedProcedure, router } from "../trpc.ts";
import { cookieCall, cookieToken, creds } from "./test-utils.ts";

/**
 * CSRF (ARCHITECTURE §3 known traps; OWASP ASVS 4.2.2, 3.5.3): a mutation authenticated by the
 * session cookie needs an allowed Origin; bearer calls are exempt; tRPC's acceptance of cross-site
 * `multipart/form-data` and `text/plain` posts is covered; queries stay side-effect free.
 */
let h: Harness;
let url: string;
let user: TestUser;
let withAllowed: FastifyInstance;
let allowedUrl: string;
const ADMIN_PANEL = "https://admin.clinic.example";

beforeAll(async () => {
  h = await createHarness();
  url = await h.listen();
  withAllowed = await buildServer({
    router: appRouter,
    services: h.services,
    database: h.testDb.handle,
    allowedOrigins: [ADMIN_PANEL],
  });
  await withAllowed.listen({ host: "127.0.0.1", port: 0 });
  const addr = withAllowed.server.address();
  allowedUrl = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  user = await makeUser(h.deps, "patient", await makeOrganization(h.deps));
});
afterAll(async () => {
  await withAllowed?.close();
  await h?.close();
});

async function freshCookie(): Promise<string> {
  const r = await cookieCall(url, "auth.login", { input: creds(user) });
  return cookieToken(r.setCookie) ?? "";
}

async function sessionAlive(cookie: string): Promise<boolean> {
  return (await cookieCall(url, "auth.me", { cookie, method: "GET" })).status === 200;
}

describe("cookie-authenticated mutations need an allowed Origin", () => {
  it("cross-origin JSON POST with the cookie is refused (403) and changes nothing", async () => {
    const cookie = await freshCookie();
    const res = await cookieCall(url, "auth.logout", { cookie, origin: "https://evil.example" });
    expect(res.status).toBe(403);
    expect(await sessionAlive(cookie)).toBe(true);
  });

  it("a cross-site multipart/form-data form post, which tRPC does execute, is refused", async () => {
    // A procedure without input, as tRPC allows: a multipart form post reaches it.
    let pokes = 0;
    const pokeRouter = router({
      poke: protectedProcedure.meta({ roles: ["patient"], phi: false }).mutation(() => ++pokes),
    });
    const app = await buildServer({
      router: pokeRouter as unknown as AppRouter,
      services: h.services,
      database: h.testDb.handle,
      allowedOrigins: [],
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    try {
      const addr = app.server.address();
      const pokeUrl = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
      const cookie = await freshCookie();
      const post = (origin: string) => {
        const form = new FormData();
        form.append("anything", "1");
        return fetch(`${pokeUrl}/trpc/poke`, {
          method: "POST",
          headers: { cookie: `haven_session=${cookie}`, origin },
          body: form,
        });
      };
      expect((await post("https://evil.example")).status).toBe(403);
      expect(pokes).toBe(0);
      // the very same form post from the server's own origin IS executed by tRPC: only the Origin
      // check stands between a cross-site form and the mutation
      expect((await post(pokeUrl)).status).toBe(200);
      expect(pokes).toBe(1);
    } finally {
      await app.close();
    }
  });

  it("a text/plain form post without Origin but with the cookie is refused", async () => {
    const cookie = await freshCookie();
    const res = await fetch(`${url}/trpc/auth.logout`, {
      method: "POST",
      headers: { cookie: `haven_session=${cookie}`, "content-type": "text/plain" },
      body: "{}",
    });
    expect(res.status).toBe(403);
    expect(await sessionAlive(cookie)).toBe(true);
  });

  it("Origin: null (sandboxed frame) is refused", async () => {
    const cookie = await freshCookie();
    expect((await cookieCall(url, "auth.logout", { cookie, origin: "null" })).status).toBe(403);
    expect(await sessionAlive(cookie)).toBe(true);
  });

  it("the same origin works; an origin listed in HAVEN_ALLOWED_ORIGINS works; others do not", async () => {
    const a = await freshCookie();
    expect((await cookieCall(url, "auth.logout", { cookie: a, origin: url })).status).toBe(200);
    expect(await sessionAlive(a)).toBe(false);
    const b = await freshCookie();
    expect(
      (await cookieCall(allowedUrl, "auth.logout", { cookie: b, origin: "https://other.example" }))
        .status,
    ).toBe(403);
    expect(
      (await cookieCall(allowedUrl, "auth.logout", { cookie: b, origin: ADMIN_PANEL })).status,
    ).toBe(200);
    expect(await sessionAlive(b)).toBe(false);
  });

  it("a cross-site login post is refused too (login CSRF), and sets no cookie", async () => {
    const res = await cookieCall(url, "auth.login", {
      input: creds(user),
      origin: "https://evil.example",
    });
    expect(res.status).toBe(403);
    expect(res.setCookie).toBeNull();
  });
});

describe("bearer calls are exempt; a bearer never borrows the cookie", () => {
  it("a bearer-token mutation from any origin works (browsers cannot send it cross-site)", async () => {
    const { token } = await createHavenClient({ url }).auth.login.mutate(creds(user));
    const res = await cookieCall(url, "auth.logout", {
      origin: "https://tool.example",
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
  });

  it("an Authorization header that is not a valid bearer does not fall back to the cookie", async () => {
    const cookie = await freshCookie();
    for (const authorization of ["Bearer ", "Basic abc", "Bearer not-a-token"]) {
      const res = await cookieCall(url, "auth.logout", {
        cookie,
        origin: "https://evil.example",
        headers: { authorization },
      });
      expect(res.status, authorization).toBe(401);
    }
    expect(await sessionAlive(cookie)).toBe(true);
  });
});

describe("queries stay side-effect free", () => {
  it("a mutation cannot be sent as GET", async () => {
    const cookie = await freshCookie();
    const res = await cookieCall(url, "auth.logout", { cookie, method: "GET" });
    expect(res.status).toBe(405);
    expect(await sessionAlive(cookie)).toBe(true);
  });

  it("a cross-site GET navigation carrying the cookie is refused (Sec-Fetch-Site)", async () => {
    const cookie = await freshCookie();
    const res = await cookieCall(url, "auth.me", {
      cookie,
      method: "GET",
      origin: null,
      headers: { "sec-fetch-site": "cross-site" },
    });
    expect(res.status).toBe(403);
    const same = await cookieCall(url, "auth.me", {
      cookie,
      method: "GET",
      origin: null,
      headers: { "sec-fetch-site": "same-origin" },
    });
    expect(same.status).toBe(200);
  });

  it("reading auth.me and the session list changes no session row beyond last-seen", async () => {
    const cookie = await freshCookie();
    const before = await h.deps.db.select().from(sessions).where(eq(sessions.userId, user.userId));
    await cookieCall(url, "auth.me", { cookie, method: "GET" });
    await cookieCall(url, "auth.sessions.list", { cookie, method: "GET" });
    const after = await h.deps.db.select().from(sessions).where(eq(sessions.userId, user.userId));
    expect(after.map((s) => s.id).sort()).toEqual(before.map((s) => s.id).sort());
  });
});
