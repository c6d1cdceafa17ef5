import { hash } from "@node-rs/argon2";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { users } from "../../db/schema/index.ts";
import { makeOrganization, makeUser } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import {
  ARGON2_MAX_CONCURRENT,
  ARGON2_PARAMS,
  Argon2Gate,
  checkPassword,
  hashPassword,
  needsRehash,
  verifyPassword,
} from "./password-hashing.ts";
import { errorOf, outcome } from "./test-utils.ts";

/** argon2id storage and NIST SP 800-63B password rules (OWASP ASVS 2.1, 2.4). */
describe("password rules (NIST 800-63B)", () => {
  const ctx = { email: "maria.gonzalez@clinic.test", names: ["Gonzalez", "Maria"] };
  it.each([
    ["too short", "short pass", /at least 12/],
    ["common password", "password1234", /too common/],
    ["keyboard walk", "qwertyuiop123", /too common/],
    ["common with symbols", "Password123!", /too common/],
    ["built from the e-mail", "maria.gonzalez2024", /e-mail address or name|too common/],
    ["built from the name", "MariaGonzalez!!", /e-mail address or name|too common/],
    ["the e-mail itself", "maria.gonzalez@clinic.test", /e-mail address or name|too common/],
    ["too long", "x".repeat(129), /at most 128/],
  ])("rejects %s", (_name, password, message) => {
    expect(checkPassword(password, ctx)).toMatch(message);
  });

  it.each([
    ["a passphrase", "correct horse battery staple 42"],
    ["spaces and punctuation", "  lantern, orbit & teacup  "],
    ["unicode", "ÄÖÜ-süß-ñandú-蜂蜜-🍯🍯"],
    ["128 characters", "a1b2c3d4e5f6g7h8".repeat(8)],
    ["no composition rules needed", "violetharbourtelescope"],
  ])("accepts %s", (_name, password) => {
    expect(checkPassword(password, ctx)).toBeNull();
  });

  it("counts code points, not UTF-16 units (an emoji is one character)", () => {
    expect(checkPassword("🍯".repeat(11), {})).toMatch(/at least 12/);
  });
});

describe("argon2id storage", () => {
  it("stores PHC strings at OWASP parameters (m=19 MiB, t=2, p=1) and verifies NFKC-equivalent input", async () => {
    const phc = await hashPassword("ﬁne passphrase here");
    expect(phc).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(ARGON2_PARAMS).toMatchObject({ memoryCost: 19_456, timeCost: 2, parallelism: 1 });
    expect(await verifyPassword(phc, "fine passphrase here")).toBe(true); // ligature ﬁ → fi
    expect(await verifyPassword(phc, "fine passphrase hers")).toBe(false);
    expect(await verifyPassword("not a phc string", "x")).toBe(false);
    expect(needsRehash(phc)).toBe(false);
    expect(needsRehash("$argon2id$v=19$m=4096,t=3,p=1$abc$def")).toBe(true);
    expect(needsRehash("$2b$10$bcryptbcryptbcrypt")).toBe(true);
  });
});

describe("login rehashes a weaker hash (ASVS 2.4.4)", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it("a hash made with older parameters is replaced on the next successful login", async () => {
    const url = await h.listen();
    const u = await makeUser(h.deps, "patient", await makeOrganization(h.deps));
    const weak = await hash(u.password, {
      algorithm: 2,
      memoryCost: 4096,
      timeCost: 1,
      parallelism: 1,
    });
    await h.deps.db.update(users).set({ passwordHash: weak }).where(eq(users.id, u.userId));
    // a failed login does not rehash
    expect(
      (
        await errorOf(
          createHavenClient({ url }).auth.login.mutate({
            email: u.email,
            password: "nope nope nope",
          }),
        )
      ).data?.code,
    ).toBe("UNAUTHORIZED");
    expect(
      (await h.deps.db.select().from(users).where(eq(users.id, u.userId)))[0]?.passwordHash,
    ).toBe(weak);
    expect(
      await outcome(
        createHavenClient({ url }).auth.login.mutate({ email: u.email, password: u.password }),
      ),
    ).toBe("OK");
    const [after] = await h.deps.db.select().from(users).where(eq(users.id, u.userId));
    expect(after?.passwordHash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(await verifyPassword(after?.passwordHash ?? "", u.password)).toBe(true);
  });

  it("a password change rejects a common or user-derived new password with the field path", async () => {
    const url = await h.listen();
    const u = await makeUser(h.deps, "patient", await makeOrganization(h.deps));
    const { token } = await createHavenClient({ url }).auth.login.mutate({
      email: u.email,
      password: u.password,
    });
    const c = createHavenClient({ url, token });
    const local = u.email.split("@")[0] ?? "";
    for (const bad of ["password1234", `${local}${local}`, u.password]) {
      const err = await errorOf(
        c.auth.password.change.mutate({ currentPassword: u.password, newPassword: bad }),
      );
      expect(err.data?.code, bad).toBe("BAD_REQUEST");
      expect(err.data?.issues?.[0]?.path).toBe("newPassword");
      expect(err.message).not.toContain(bad);
    }
    const wrong = await errorOf(
      c.auth.password.change.mutate({
        currentPassword: "not my password",
        newPassword: "violet harbour telescope 82",
      }),
    );
    expect(wrong.data).toMatchObject({ code: "FORBIDDEN", reason: "invalid_credentials" });
  });
});

/** argon2's 19 MiB working blocks: no more in flight than there are CPUs to compute them. */
describe("Argon2Gate", () => {
  it("runs at most `limit` tasks at once, in arrival order, and frees slots on failure", async () => {
    const gate = new Argon2Gate(2);
    const started: number[] = [];
    const release: (() => void)[] = [];
    const tasks = Array.from({ length: 6 }, (_, i) =>
      gate.run(
        () =>
          new Promise<number>((ok, fail) => {
            started.push(i);
            release[i] = () => (i === 1 ? fail(new Error("boom")) : ok(i));
          }),
      ),
    );
    const settle = async () => {
      for (let k = 0; k < 5; k++) await Promise.resolve();
    };
    await settle();
    expect(started).toEqual([0, 1]);
    release[1]?.();
    await expect(tasks[1]).rejects.toThrow("boom");
    await settle();
    expect(started).toEqual([0, 1, 2]);
    // A caller arriving while a slot is handed over waits like the others.
    const late = gate.run(async () => -1);
    for (const i of [0, 2, 3, 4, 5]) {
      await settle();
      release[i]?.();
    }
    expect(await Promise.all([tasks[0], tasks[2], tasks[3], tasks[4], tasks[5], late])).toEqual([
      0, 2, 3, 4, 5, -1,
    ]);
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
    expect(gate.peak).toBe(2);
    expect(gate.running).toBe(0);
  });

  it("allows one to four computations at once, never more than the CPUs", () => {
    expect(ARGON2_MAX_CONCURRENT).toBeGreaterThanOrEqual(1);
    expect(ARGON2_MAX_CONCURRENT).toBeLessThanOrEqual(4);
  });
});
