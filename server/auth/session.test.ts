import { createHash } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { patients, sessions } from "../../db/schema/index.ts";
import {
  loginWithMfa,
  makeOrganization,
  makePatient,
  makeUser,
  type TestUser,
} from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { SessionManager } from "./session.ts";
import {
  advance,
  auditRows,
  cookieCall,
  cookieToken,
  creds,
  errorOf,
  outcome,
} from "./test-utils.ts";

/**
 * Sessions over HTTP against real Postgres (OWASP ASVS V3; 45 CFR 164.312(a)(2)(iii)): hashed ids,
 * cookie attributes, logout and replay, idle timeout and absolute lifetime on the injected clock,
 * session listing and revocation, revocation on password and role change.
 */
let h: Harness;
let url: string;
let org: string;
const MIN = 60_000;

beforeAll(async () => {
  h = await createHarness();
  url = await h.listen();
  org = await makeOrganization(h.deps);
});
afterAll(async () => {
  await h?.close();
});

const me = (token: string) => createHavenClient({ url, token }).auth.me.query();

describe("session tokens", () => {
  it("the token is nowhere in the sessions table; its SHA-256 is the id (ASVS 3.2.2, 3.5.2)", async () => {
    const user = await makeUser(h.deps, "patient", org);
    const { token } = await createHavenClient({ url }).auth.login.mutate(creds(user));
    const rows = await h.deps.db.select().from(sessions);
    expect(JSON.stringify(rows)).not.toContain(token);
    const hash = createHash("sha256").update(token).digest("hex");
    expect(rows.some((r) => r.id === hash)).toBe(true);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 256 random bits (ASVS 3.2.2)
  });

  it("every login issues a new token (ASVS 3.2.1)", async () => {
    const user = await makeUser(h.deps, "patient", org);
    const a = await createHavenClient({ url }).auth.login.mutate(creds(user));
    const b = await createHavenClient({ url }).auth.login.mutate(creds(user));
    expect(a.token).not.toBe(b.token);
  });

  it("sets HttpOnly; SameSite=Lax; Path=/ and no Secure outside production (ASVS 3.4.x)", async () => {
    const user = await makeUser(h.deps, "patient", org);
    const res = await cookieCall(url, "auth.login", { input: creds(user) });
    expect(res.status).toBe(200);
    const c = res.setCookie ?? "";
    expect(c).toMatch(/^haven_session=[A-Za-z0-9_-]{43};/);
    expect(c).toMatch(/HttpOnly/i);
    expect(c).toMatch(/SameSite=Lax/i);
    expect(c).toMatch(/Path=\//i);
    expect(c).not.toMatch(/Secure/i);
    expect(c).not.toMatch(/Max-Age|Expires/i); // a browser-session cookie
  });

  it("sets Secure in production", () => {
    const prod = new SessionManager(h.deps.db, { ttlHours: 12, secureCookies: true });
    expect(prod.cookie("t".repeat(43)).attributes).toMatchObject({
      secure: true,
      httpOnly: true,
      sameSite: "lax",
      path: "/",
    });
  });

  it("a stolen cookie replayed after logout is refused (ASVS 3.3.1)", async () => {
    const user = await makeUser(h.deps, "patient", org);
    const login = await cookieCall(url, "auth.login", { input: creds(user) });
    const stolen = cookieToken(login.setCookie) ?? "";
    expect((await cookieCall(url, "auth.me", { cookie: stolen, method: "GET" })).status).toBe(200);
    const out = await cookieCall(url, "auth.logout", { cookie: stolen });
    expect(out.status).toBe(200);
    expect(cookieToken(out.setCookie)).toBe("");
    const replay = await cookieCall(url, "auth.me", { cookie: stolen, method: "GET" });
    expect(replay.status).toBe(401);
    expect((await errorOf(me(stolen))).data?.code).toBe("UNAUTHORIZED");
    expect(
      await h.deps.db
        .select()
        .from(sessions)
        .where(eq(sessions.id, createHash("sha256").update(stolen).digest("hex"))),
    ).toEqual([]);
  });
});

describe("idle timeout and absolute lifetime (injected clock, 45 CFR 164.312(a)(2)(iii))", () => {
  it("a staff session idle for 15 minutes is logged off; activity slides the window", async () => {
    const staff = await makeUser(h.deps, "staff", org);
    const token = await loginWithMfa(h, url, staff);
    advance(h, 14 * MIN);
    expect((await me(token)).user.id).toBe(staff.userId); // activity at 14 min
    advance(h, 14 * MIN);
    expect((await me(token)).user.id).toBe(staff.userId); // 28 min after login, 14 idle
    const list = await createHavenClient({ url, token }).auth.sessions.list.query();
    expect(list.find((s) => s.current)?.lastSeenAt.getTime()).toBe(h.clock.now.getTime());
    advance(h, 15 * MIN);
    expect((await errorOf(me(token))).data?.code).toBe("UNAUTHORIZED");
    const expired = await auditRows(h, "auth.session_expired", staff.userId);
    expect(expired.at(-1)?.details).toEqual({ reason: "idle" });
    // and it stays dead when the user comes back
    expect((await errorOf(me(token))).data?.code).toBe("UNAUTHORIZED");
  });

  it("last_seen_at is written at most once per refresh interval (1 min), not per request", async () => {
    const staff = await makeUser(h.deps, "staff", org);
    const { token } = await h.services.sessions.create(staff.userId, {
      ip: null,
      userAgent: null,
      mfaVerified: true,
      now: h.deps.now(),
    });
    const lastSeen = async () =>
      (
        await h.deps.db
          .select({ at: sessions.lastSeenAt })
          .from(sessions)
          .where(eq(sessions.id, createHash("sha256").update(token).digest("hex")))
      )[0]?.at.getTime();
    const created = await lastSeen();
    for (let i = 0; i < 5; i++) {
      advance(h, 10_000); // 10, 20, … 50 s: inside the interval
      const v = await h.services.sessions.validate(token);
      expect(v?.refreshed).toBe(false);
      expect(await lastSeen()).toBe(created);
    }
    advance(h, 10_000); // 60 s after the last write: one refresh
    expect((await h.services.sessions.validate(token))?.refreshed).toBe(true);
    expect(await lastSeen()).toBe(h.clock.now.getTime());
    advance(h, 1_000);
    expect((await h.services.sessions.validate(token))?.refreshed).toBe(false);
  });

  it("each privileged role idles out; a patient does not", async () => {
    const users: Record<string, TestUser> = {};
    const tokens: Record<string, string> = {};
    for (const role of ["clinician", "staff", "admin", "patient"] as const) {
      users[role] = await makeUser(h.deps, role, org);
      tokens[role] = await loginWithMfa(h, url, users[role]);
    }
    advance(h, 16 * MIN);
    for (const role of ["clinician", "staff", "admin"]) {
      expect(await outcome(me(tokens[role] ?? "")), role).toBe("UNAUTHORIZED");
    }
    expect(await outcome(me(tokens.patient ?? ""))).toBe("OK");
  });

  it("the absolute lifetime (12 h) ends every session, however active (ASVS 3.3.2)", async () => {
    const staff = await makeUser(h.deps, "staff", org);
    const patientUser = await makeUser(h.deps, "patient", org);
    const staffToken = await loginWithMfa(h, url, staff);
    const patientToken = (await createHavenClient({ url }).auth.login.mutate(creds(patientUser)))
      .token;
    for (let t = 0; t < 12 * 60 - 10; t += 10) {
      advance(h, 10 * MIN);
      await me(staffToken);
    }
    expect(await outcome(me(staffToken))).toBe("OK");
    expect(await outcome(me(patientToken))).toBe("OK");
    advance(h, 11 * MIN); // 12 h 1 min after login
    expect(await outcome(me(staffToken))).toBe("UNAUTHORIZED");
    expect(await outcome(me(patientToken))).toBe("UNAUTHORIZED");
    const rows = await auditRows(h, "auth.session_expired", patientUser.userId);
    expect(rows.at(-1)?.details).toEqual({ reason: "absolute" });
  });
});

describe("session control (ASVS 3.3.3, 3.3.4)", () => {
  it("lists the caller's sessions and revokes one; the revoked token stops working", async () => {
    const user = await makeUser(h.deps, "patient", org);
    const a = (await createHavenClient({ url }).auth.login.mutate(creds(user))).token;
    const b = (await createHavenClient({ url }).auth.login.mutate(creds(user))).token;
    const other = await makeUser(h.deps, "patient", org);
    const c = (await createHavenClient({ url }).auth.login.mutate(creds(other))).token;
    const list = await createHavenClient({ url, token: a }).auth.sessions.list.query();
    expect(list).toHaveLength(2);
    expect(list.filter((s) => s.current)).toHaveLength(1);
    expect(JSON.stringify(list)).not.toContain(a);
    const idOfB = createHash("sha256").update(b).digest("hex");
    const idOfC = createHash("sha256").update(c).digest("hex");
    // someone else's session cannot be revoked (NOT_FOUND, nothing disclosed)
    expect(
      await outcome(
        createHavenClient({ url, token: a }).auth.sessions.revoke.mutate({ sessionId: idOfC }),
      ),
    ).toBe("NOT_FOUND");
    expect(await outcome(me(c))).toBe("OK");
    await createHavenClient({ url, token: a }).auth.sessions.revoke.mutate({ sessionId: idOfB });
    expect(await outcome(me(b))).toBe("UNAUTHORIZED");
    expect(await outcome(me(a))).toBe("OK");
    expect((await auditRows(h, "auth.session_revoked", user.userId)).at(-1)?.resourceId).toBe(
      idOfB,
    );
  });

  it("logoutEverywhere ends every session of the caller, this one included, and clears the cookie", async () => {
    const user = await makeUser(h.deps, "patient", org);
    const a = await cookieCall(url, "auth.login", { input: creds(user) });
    const b = (await createHavenClient({ url }).auth.login.mutate(creds(user))).token;
    const cookie = cookieToken(a.setCookie) ?? "";
    const res = await cookieCall(url, "auth.logoutEverywhere", { cookie });
    expect(res.status).toBe(200);
    expect(cookieToken(res.setCookie)).toBe("");
    expect(await outcome(me(cookie))).toBe("UNAUTHORIZED");
    expect(await outcome(me(b))).toBe("UNAUTHORIZED");
    expect((await auditRows(h, "auth.logout_everywhere", user.userId)).at(-1)?.details).toEqual({
      revoked: 2,
    });
  });

  it("a password change revokes every other session and keeps this one (ASVS 3.3.3)", async () => {
    const user = await makeUser(h.deps, "patient", org);
    const a = (await createHavenClient({ url }).auth.login.mutate(creds(user))).token;
    const b = (await createHavenClient({ url }).auth.login.mutate(creds(user))).token;
    const newPassword = "a completely new passphrase 7412";
    const r = await createHavenClient({ url, token: a }).auth.password.change.mutate({
      currentPassword: user.password,
      newPassword,
    });
    expect(r.otherSessionsRevoked).toBe(1);
    expect(await outcome(me(a))).toBe("OK");
    expect(await outcome(me(b))).toBe("UNAUTHORIZED");
    expect(await outcome(createHavenClient({ url }).auth.login.mutate(creds(user)))).toBe(
      "UNAUTHORIZED:invalid_credentials",
    );
    expect(
      await outcome(
        createHavenClient({ url }).auth.login.mutate({ email: user.email, password: newPassword }),
      ),
    ).toBe("OK");
  });

  it("a role change and a disabled account revoke the user's sessions", async () => {
    const admin = await makeUser(h.deps, "admin", org);
    const adminClient = createHavenClient({ url, token: await loginWithMfa(h, url, admin) });
    const clinician = await makeUser(h.deps, "clinician", org);
    const t1 = await loginWithMfa(h, url, clinician);
    await adminClient.auth.users.setRole.mutate({ userId: clinician.userId, role: "staff" });
    expect(await outcome(me(t1))).toBe("UNAUTHORIZED");
    const t2 = await loginWithMfa(h, url, clinician);
    expect((await me(t2)).user.role).toBe("staff");
    await adminClient.auth.users.setDisabled.mutate({ userId: clinician.userId, disabled: true });
    expect(await outcome(me(t2))).toBe("UNAUTHORIZED");
    expect(await outcome(createHavenClient({ url }).auth.login.mutate(creds(clinician)))).toBe(
      "UNAUTHORIZED:invalid_credentials",
    );
  });

  it("a session whose user is disabled directly in the database is refused and deleted", async () => {
    const user = await makeUser(h.deps, "patient", org);
    const p = await makePatient(h.deps, org);
    await h.deps.db.update(patients).set({ userId: user.userId }).where(eq(patients.id, p.id));
    const { token } = await createHavenClient({ url }).auth.login.mutate(creds(user));
    const { users } = await import("../../db/schema/index.ts");
    await h.deps.db.update(users).set({ disabledAt: h.clock.now }).where(eq(users.id, user.userId));
    expect(
      await outcome(createHavenClient({ url, token }).patients.get.query({ patientId: p.id })),
    ).toBe("UNAUTHORIZED");
    expect(await h.deps.db.select().from(sessions).where(eq(sessions.userId, user.userId))).toEqual(
      [],
    );
  });
});
