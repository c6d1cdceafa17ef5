import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { auditEvents, mfaRecoveryCodes, patients, users } from "../../db/schema/index.ts";
import { advance, auditRows, cookieCall, creds, errorOf, outcome } from "../auth/test-utils.ts";
import {
  loginWithMfa,
  makeOrganization,
  makePatient,
  makeUser,
  type TestUser,
} from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { enrolTotpDirectly, totpCode, verifyFreshTotp } from "./service.ts";

/**
 * TOTP MFA over HTTP against real Postgres (RFC 6238; OWASP ASVS 2.7, 2.8; 45 CFR 164.312(d)):
 * enrolment with otpauth URI and QR, confirmation, recovery codes, replay refusal, throttling of
 * wrong codes, the `mfa_required` refusal on PHI procedures, and admin reset.
 */
let h: Harness;
let url: string;
let org: string;
const STEP = 30_000;

beforeAll(async () => {
  h = await createHarness();
  url = await h.listen();
  org = await makeOrganization(h.deps);
});
afterAll(async () => {
  await h?.close();
});

const client = (token?: string) => createHavenClient({ url, ...(token ? { token } : {}) });
const signIn = async (u: TestUser) => client().auth.login.mutate(creds(u));

/** A six-digit code that is certainly wrong for every step in the ±1 window. */
function wrongCode(secret: string): string {
  const valid = new Set(
    [-1, 0, 1].map((d) => totpCode(secret, new Date(h.clock.now.getTime() + d * STEP))),
  );
  for (let n = 0; ; n++) {
    const c = String(n).padStart(6, "0");
    if (!valid.has(c)) return c;
  }
}

/** A clinician enrolled directly (no HTTP), with the secret. */
async function enrolledClinician(): Promise<TestUser & { secret: string }> {
  const u = await makeUser(h.deps, "clinician", org);
  return { ...u, secret: await enrolTotpDirectly(h.deps, u.userId) };
}

describe("MFA is required before PHI for clinician, staff and admin", () => {
  it.each(["clinician", "staff", "admin"] as const)(
    "a %s session without MFA gets FORBIDDEN reason mfa_required on PHI, audited",
    async (role) => {
      const u = await makeUser(h.deps, role, org);
      const login = await signIn(u);
      expect(login.mfa).toBe("enrol");
      const err = await errorOf(client(login.token).patients.search.query({ mrn: "MRN-1" }));
      expect(err.data?.code).toBe("FORBIDDEN");
      expect(err.data?.reason).toBe("mfa_required");
      const denied = await auditRows(h, "access.denied", u.userId);
      expect(denied.at(-1)).toMatchObject({
        outcome: "denied",
        resourceId: "patients.search",
        details: { rule: "mfa" },
      });
      // non-PHI procedures still work: the user can enrol
      expect((await client(login.token).auth.me.query()).mfaVerified).toBe(false);
    },
  );

  it("a patient needs no MFA, unless they enrolled an authenticator themselves", async () => {
    const p = await makePatient(h.deps, org);
    const u = await makeUser(h.deps, "patient", org);
    await h.deps.db.update(patients).set({ userId: u.userId }).where(eq(patients.id, p.id));
    const plain = await signIn(u);
    expect(plain.mfa).toBe("none");
    expect(await outcome(client(plain.token).patients.get.query({ patientId: p.id }))).toBe("OK");
    const secret = await enrolTotpDirectly(h.deps, u.userId);
    const login = await signIn(u);
    expect(login.mfa).toBe("verify");
    expect(await outcome(client(login.token).patients.get.query({ patientId: p.id }))).toBe(
      "FORBIDDEN:mfa_required",
    );
    const { token } = await client(login.token).auth.mfa.verify.mutate({
      code: totpCode(secret, h.clock.now),
    });
    expect(await outcome(client(token).patients.get.query({ patientId: p.id }))).toBe("OK");
  });
});

describe("enrolment (auth.mfa.enroll → auth.mfa.confirm)", () => {
  it("returns an otpauth URI and a PNG QR data URL, stores the secret only encrypted, and confirms with a code", async () => {
    const u = await makeUser(h.deps, "clinician", org);
    const first = await signIn(u);
    const c = client(first.token);
    const e = await c.auth.mfa.enroll.mutate();
    expect(e.secret).toMatch(/^[A-Z2-7]{32}$/); // 160 bits
    expect(e.uri).toMatch(/^otpauth:\/\/totp\/Haven:/);
    expect(new URL(e.uri).searchParams.get("secret")).toBe(e.secret);
    expect(new URL(e.uri).searchParams.get("issuer")).toBe("Haven");
    const png = Buffer.from(e.qrDataUrl.replace(/^data:image\/png;base64,/, ""), "base64");
    expect(png.subarray(1, 4).toString("latin1")).toBe("PNG");
    const [row] = await h.deps.db.select().from(users).where(eq(users.id, u.userId));
    expect(row?.totpPendingSecret).toMatch(/^hv1:/);
    expect(JSON.stringify(row)).not.toContain(e.secret);
    expect(row?.totpEnabledAt).toBeNull();

    expect(await outcome(c.auth.mfa.confirm.mutate({ code: wrongCode(e.secret) }))).toBe(
      "FORBIDDEN:mfa_code_invalid",
    );
    const confirmed = await c.auth.mfa.confirm.mutate({ code: totpCode(e.secret, h.clock.now) });
    expect(confirmed.recoveryCodes).toHaveLength(10);
    expect(confirmed.recoveryCodes[0]).toMatch(/^[a-z2-7]{6}(-[a-z2-7]{6}){3}$/);
    // the session was replaced: the old token is dead, the new one is MFA-verified
    expect(await outcome(c.auth.me.query())).toBe("UNAUTHORIZED");
    const me = await client(confirmed.token).auth.me.query();
    expect(me).toMatchObject({ mfaVerified: true, mfaEnrolled: true });
    expect(await outcome(client(confirmed.token).patients.search.query({ mrn: "x" }))).toBe("OK");
    const stored = await h.deps.db
      .select({ hash: mfaRecoveryCodes.codeHash })
      .from(mfaRecoveryCodes)
      .where(eq(mfaRecoveryCodes.userId, u.userId));
    expect(stored).toHaveLength(10);
    expect(JSON.stringify(stored)).not.toContain(confirmed.recoveryCodes[0]?.replaceAll("-", ""));
    expect((await auditRows(h, "auth.mfa_enrolled", u.userId)).length).toBe(1);
    // the enrolment code cannot be replayed to verify a new session
    const again = await signIn(u);
    expect(again.mfa).toBe("verify");
    expect(
      await outcome(
        client(again.token).auth.mfa.verify.mutate({ code: totpCode(e.secret, h.clock.now) }),
      ),
    ).toBe("FORBIDDEN:mfa_code_reused");
  });

  it("replacing a confirmed authenticator needs an MFA-verified session", async () => {
    const u = await enrolledClinician();
    const login = await signIn(u);
    expect(await outcome(client(login.token).auth.mfa.enroll.mutate())).toBe(
      "FORBIDDEN:mfa_required",
    );
    advance(h, STEP);
    const { token } = await client(login.token).auth.mfa.verify.mutate({
      code: totpCode(u.secret, h.clock.now),
    });
    expect(await outcome(client(token).auth.mfa.enroll.mutate())).toBe("OK");
  });
});

describe("verification (auth.mfa.verify)", () => {
  it("accepts a fresh code once; the same code is refused in its window (replay, ASVS 2.8.4)", async () => {
    const u = await enrolledClinician();
    const code = totpCode(u.secret, h.clock.now);
    const a = await signIn(u);
    const verified = await client(a.token).auth.mfa.verify.mutate({ code });
    expect(verified.token).not.toBe(a.token);
    expect(await outcome(client(a.token).auth.me.query())).toBe("UNAUTHORIZED"); // rotated (ASVS 3.2.1)
    expect((await client(verified.token).auth.me.query()).mfaVerified).toBe(true);
    // an attacker who saw the code replays it on their own session within the 30 s step
    const b = await signIn(u);
    const replay = await errorOf(client(b.token).auth.mfa.verify.mutate({ code }));
    expect(replay.data?.code).toBe("FORBIDDEN");
    expect(replay.data?.reason).toBe("mfa_code_reused");
    // an older code (previous step) is refused too, even inside the ±1 drift window
    expect(
      await outcome(
        client(b.token).auth.mfa.verify.mutate({
          code: totpCode(u.secret, new Date(h.clock.now.getTime() - STEP)),
        }),
      ),
    ).toBe("FORBIDDEN:mfa_code_reused");
    // the next step's code works
    advance(h, STEP);
    expect(
      await outcome(
        client(b.token).auth.mfa.verify.mutate({ code: totpCode(u.secret, h.clock.now) }),
      ),
    ).toBe("OK");
    const failed = await auditRows(h, "auth.mfa_failed", u.userId);
    expect(failed.map((r) => r.details?.reason)).toEqual(["reused_code", "reused_code"]);
    expect((await auditRows(h, "auth.mfa_verified", u.userId)).length).toBe(2);
  });

  it("accepts ±1 step of clock drift, not 2", async () => {
    const u = await enrolledClinician();
    const login = await signIn(u);
    const twoAgo = totpCode(u.secret, new Date(h.clock.now.getTime() - 2 * STEP));
    expect(await outcome(client(login.token).auth.mfa.verify.mutate({ code: twoAgo }))).toBe(
      "FORBIDDEN:mfa_code_invalid",
    );
    const ahead = totpCode(u.secret, new Date(h.clock.now.getTime() + STEP));
    expect(await outcome(client(login.token).auth.mfa.verify.mutate({ code: ahead }))).toBe("OK");
  });

  it("two concurrent requests with the same code: exactly one succeeds", async () => {
    const u = await enrolledClinician();
    advance(h, STEP);
    const code = totpCode(u.secret, h.clock.now);
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, () => verifyFreshTotp(h.deps, u.userId, code, { ip: "10.9.9.9" })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
  });

  it("a recovery code works once", async () => {
    const u = await makeUser(h.deps, "staff", org);
    const first = await signIn(u);
    const e = await client(first.token).auth.mfa.enroll.mutate();
    advance(h, STEP);
    const { recoveryCodes } = await client(first.token).auth.mfa.confirm.mutate({
      code: totpCode(e.secret, h.clock.now),
    });
    const code = recoveryCodes[3] ?? "";
    const a = await signIn(u);
    const ok = await client(a.token).auth.mfa.verify.mutate({ recoveryCode: code.toUpperCase() });
    expect((await client(ok.token).auth.me.query()).mfaVerified).toBe(true);
    const b = await signIn(u);
    expect(await outcome(client(b.token).auth.mfa.verify.mutate({ recoveryCode: code }))).toBe(
      "FORBIDDEN:mfa_code_invalid",
    );
    const status = await client(ok.token).auth.mfa.status.query();
    expect(status.recoveryCodesRemaining).toBe(9);
    const fresh = await client(ok.token).auth.mfa.regenerateRecoveryCodes.mutate();
    expect(fresh.recoveryCodes).toHaveLength(10);
    expect(
      await outcome(
        client(b.token).auth.mfa.verify.mutate({ recoveryCode: recoveryCodes[4] ?? "" }),
      ),
    ).toBe("FORBIDDEN:mfa_code_invalid");
  });

  it("wrong codes are throttled per account: the 6th attempt gets TOO_MANY_REQUESTS with Retry-After, lockout audited", async () => {
    const u = await enrolledClinician();
    const login = await signIn(u);
    for (let i = 0; i < 5; i++) {
      expect(
        await outcome(client(login.token).auth.mfa.verify.mutate({ code: wrongCode(u.secret) })),
      ).toBe("FORBIDDEN:mfa_code_invalid");
      advance(h, 1_000);
    }
    advance(h, STEP);
    const good = totpCode(u.secret, h.clock.now);
    const res = await cookieCall(url, "auth.mfa.verify", {
      origin: null,
      headers: { authorization: `Bearer ${login.token}` },
      input: { code: good },
    });
    expect(res.status).toBe(429);
    const retry = Number(res.headers.get("retry-after"));
    expect(retry).toBeGreaterThan(14 * 60);
    expect(retry).toBeLessThanOrEqual(15 * 60);
    expect(JSON.stringify(res.body)).toContain(`"retryAfterSeconds":${retry}`);
    expect((await auditRows(h, "auth.lockout", u.userId)).at(-1)?.details).toMatchObject({
      scope: "mfa",
      failures: 5,
    });
    expect((await auditRows(h, "auth.login_throttled", u.userId)).length).toBe(1);
    // after the window the right code works again (on a new sign-in: the idle session timed out)
    advance(h, retry * 1000);
    expect(await outcome(client(login.token).auth.me.query())).toBe("UNAUTHORIZED");
    const later = await signIn(u);
    expect(
      await outcome(
        client(later.token).auth.mfa.verify.mutate({ code: totpCode(u.secret, h.clock.now) }),
      ),
    ).toBe("OK");
  });
});

describe("admin MFA reset (auth.users.resetMfa)", () => {
  it("removes the authenticator, revokes the user's sessions, and is audited; never on oneself", async () => {
    const admin = await makeUser(h.deps, "admin", org);
    const adminToken = await loginWithMfa(h, url, admin);
    const u = await enrolledClinician();
    const userToken = await loginWithMfa(h, url, u);
    const r = await client(adminToken).auth.users.resetMfa.mutate({ userId: u.userId });
    expect(r.sessionsRevoked).toBe(1);
    expect(await outcome(client(userToken).auth.me.query())).toBe("UNAUTHORIZED");
    const [row] = await h.deps.db.select().from(users).where(eq(users.id, u.userId));
    expect(row).toMatchObject({ totpSecret: null, totpEnabledAt: null, totpLastStep: null });
    expect((await signIn(u)).mfa).toBe("enrol");
    const audit = await auditRows(h, "auth.mfa_reset", admin.userId);
    expect(audit.at(-1)).toMatchObject({ outcome: "allowed", resourceId: u.userId });
    expect(
      await outcome(client(adminToken).auth.users.resetMfa.mutate({ userId: admin.userId })),
    ).toBe("FORBIDDEN:self");
    // an admin of another organization cannot even learn the account exists
    const otherAdmin = await makeUser(h.deps, "admin", await makeOrganization(h.deps));
    const otherToken = await loginWithMfa(h, url, otherAdmin);
    expect(await outcome(client(otherToken).auth.users.resetMfa.mutate({ userId: u.userId }))).toBe(
      "NOT_FOUND",
    );
    // staff may not; and an admin session without MFA may not either
    const staffToken = await loginWithMfa(h, url, await makeUser(h.deps, "staff", org));
    expect(await outcome(client(staffToken).auth.users.resetMfa.mutate({ userId: u.userId }))).toBe(
      "FORBIDDEN",
    );
    const noMfa = await signIn(admin);
    expect(
      await outcome(client(noMfa.token).auth.users.resetMfa.mutate({ userId: u.userId })),
    ).toBe("FORBIDDEN:mfa_required");
  });
});

describe("no secrets in the audit trail", () => {
  it("no TOTP secret, code, recovery code or token appears in any audit row", async () => {
    const u = await makeUser(h.deps, "clinician", org);
    const first = await signIn(u);
    const e = await client(first.token).auth.mfa.enroll.mutate();
    advance(h, STEP);
    const code = totpCode(e.secret, h.clock.now);
    const conf = await client(first.token).auth.mfa.confirm.mutate({ code });
    const rows = JSON.stringify(await h.deps.db.select().from(auditEvents));
    for (const needle of [
      e.secret,
      code,
      first.token,
      conf.token,
      ...conf.recoveryCodes,
      u.password,
    ]) {
      expect(rows).not.toContain(needle);
    }
    expect(h.logs.text()).not.toContain(e.secret);
  });
});
