import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";

const keys = {
  HAVEN_PHI_KEYS: `k1:${randomBytes(32).toString("base64")}`,
  HAVEN_BLIND_INDEX_KEY: randomBytes(32).toString("base64"),
};

/** Run `fn`, assert it throws a ConfigError, and return it. */
function configError(fn: () => unknown): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const err = caught as ConfigError;
  expect(err.name).toBe("ConfigError");
  return err;
}

describe("loadConfig defaults", () => {
  it("parses an empty environment with defaults", () => {
    const c = loadConfig({});
    expect(c.NODE_ENV).toBe("development");
    expect(c.HOST).toBe("127.0.0.1");
    expect(c.PORT).toBe(3000);
    expect(c.DATABASE_URL).toBeUndefined();
    expect(c.HAVEN_DATA_DIR).toBe(".haven");
    expect(c.HAVEN_MIGRATE_ON_START).toBe(true);
    expect(c.HAVEN_DEMO).toBe("auto");
    expect(c.HAVEN_PHI_KEYS).toBeUndefined();
    expect(c.HAVEN_BLIND_INDEX_KEY).toBeUndefined();
    expect(c.HAVEN_SESSION_TTL_HOURS).toBe(12);
    expect(c.LOG_LEVEL).toBe("info");
  });

  it("ignores unrelated variables", () => {
    expect(loadConfig({ PATH: "/usr/bin", HOME: "/root" }).PORT).toBe(3000);
  });
});

describe("loadConfig values", () => {
  it("coerces PORT and session TTL from strings", () => {
    const c = loadConfig({ PORT: "8080", HAVEN_SESSION_TTL_HOURS: "1.5" });
    expect(c.PORT).toBe(8080);
    expect(c.HAVEN_SESSION_TTL_HOURS).toBe(1.5);
  });

  it.each(["postgres://u@h:5432/db", "postgresql://u:p@127.0.0.1/db?sslmode=require"])(
    "accepts DATABASE_URL %s",
    (url) => {
      expect(loadConfig({ DATABASE_URL: url }).DATABASE_URL).toBe(url);
    },
  );

  it.each([
    ["true", true],
    ["1", true],
    ["yes", true],
    ["false", false],
    ["0", false],
    ["no", false],
  ])("HAVEN_MIGRATE_ON_START=%s → %s", (value, expected) => {
    expect(loadConfig({ HAVEN_MIGRATE_ON_START: value }).HAVEN_MIGRATE_ON_START).toBe(expected);
  });

  it.each(["true", "false", "auto"])("accepts HAVEN_DEMO=%s", (value) => {
    expect(loadConfig({ HAVEN_DEMO: value }).HAVEN_DEMO).toBe(value);
  });

  it.each([
    ["PORT", "abc"],
    ["PORT", "70000"],
    ["PORT", "-1"],
    ["PORT", "80.5"],
    ["DATABASE_URL", "mysql://u@h/db"],
    ["DATABASE_URL", "not a url"],
    ["NODE_ENV", "staging"],
    ["HAVEN_MIGRATE_ON_START", "maybe"],
    ["HAVEN_DEMO", "yes"],
    ["HAVEN_SESSION_TTL_HOURS", "0"],
    ["HAVEN_SESSION_TTL_HOURS", "1000"],
    ["LOG_LEVEL", "verbose"],
    ["HAVEN_PHI_KEYS", ""],
    ["HAVEN_BLIND_INDEX_KEY", ""],
    ["HAVEN_DATA_DIR", ""],
    ["HOST", ""],
  ])("rejects %s=%j naming the variable", (name, value) => {
    const err = configError(() => loadConfig({ [name]: value }));
    expect(err.message).toContain(name);
  });

  it("names bad PORT and bad DATABASE_URL in ONE error", () => {
    const err = configError(() => loadConfig({ PORT: "not-a-port", DATABASE_URL: "mysql://x" }));
    expect(err.message).toContain("PORT");
    expect(err.message).toContain("DATABASE_URL");
    expect(err.message).toMatch(/postgres/);
  });

  it("lists every invalid variable on its own line", () => {
    const err = configError(() =>
      loadConfig({ PORT: "x", DATABASE_URL: "x", LOG_LEVEL: "x", HAVEN_DEMO: "x" }),
    );
    const lines = err.message.split("\n").slice(1);
    for (const name of ["PORT", "DATABASE_URL", "LOG_LEVEL", "HAVEN_DEMO"]) {
      expect(lines.some((l) => l.trim().startsWith(`${name}:`))).toBe(true);
    }
  });

  it("does not echo the invalid value of a key variable", () => {
    const err = configError(() =>
      loadConfig({ DATABASE_URL: "mysql://user:hunter2@h/db", HAVEN_PHI_KEYS: "" }),
    );
    expect(err.message).not.toContain("hunter2");
  });
});

describe("HAVEN_ALLOWED_ORIGINS", () => {
  it("defaults to an empty list", () => {
    expect(loadConfig({}).HAVEN_ALLOWED_ORIGINS).toEqual([]);
  });

  it("splits, trims and drops empty entries", () => {
    expect(
      loadConfig({ HAVEN_ALLOWED_ORIGINS: " https://a.example ,https://b.example:8443,," })
        .HAVEN_ALLOWED_ORIGINS,
    ).toEqual(["https://a.example", "https://b.example:8443"]);
  });

  it("rejects an entry that is not a URL, naming the variable", () => {
    const err = configError(() =>
      loadConfig({ HAVEN_ALLOWED_ORIGINS: "https://a.example,not an origin" }),
    );
    expect(err.message).toContain("HAVEN_ALLOWED_ORIGINS");
  });
});

describe("loadConfig in production", () => {
  it("refuses to start without keys, with a clear message", () => {
    const err = configError(() => loadConfig({ NODE_ENV: "production" }));
    expect(err.message).toContain("HAVEN_PHI_KEYS");
    expect(err.message).toContain("HAVEN_BLIND_INDEX_KEY");
    expect(err.message).toContain("NODE_ENV=production");
  });

  it.each([
    ["HAVEN_PHI_KEYS missing", { HAVEN_BLIND_INDEX_KEY: keys.HAVEN_BLIND_INDEX_KEY }],
    ["HAVEN_BLIND_INDEX_KEY missing", { HAVEN_PHI_KEYS: keys.HAVEN_PHI_KEYS }],
  ])("refuses when %s", (_label, env) => {
    const err = configError(() => loadConfig({ NODE_ENV: "production", ...env }));
    expect(err.message).toMatch(/required when NODE_ENV=production/);
    expect(err.message).not.toContain(keys.HAVEN_PHI_KEYS);
    expect(err.message).not.toContain(keys.HAVEN_BLIND_INDEX_KEY);
  });

  it("parses with both keys", () => {
    const c = loadConfig({ NODE_ENV: "production", ...keys });
    expect(c.NODE_ENV).toBe("production");
    expect(c.HAVEN_PHI_KEYS).toBe(keys.HAVEN_PHI_KEYS);
    expect(c.HAVEN_BLIND_INDEX_KEY).toBe(keys.HAVEN_BLIND_INDEX_KEY);
    expect(c.PORT).toBe(3000);
  });

  it("development and test do not require keys", () => {
    expect(loadConfig({ NODE_ENV: "development" }).HAVEN_PHI_KEYS).toBeUndefined();
    expect(loadConfig({ NODE_ENV: "test" }).HAVEN_PHI_KEYS).toBeUndefined();
  });
});
