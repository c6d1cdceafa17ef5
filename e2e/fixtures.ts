import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import AxeBuilder from "@axe-core/playwright";
import { createHavenClient, type HavenClient } from "@haven/client";
import { type BrowserContext, test as base, expect, type Page } from "@playwright/test";
import postgres from "postgres";
import type { E2eState } from "./global-setup.ts";

export type Role = "admin" | "staff" | "clinician";

export function state(): E2eState {
  return JSON.parse(readFileSync(join(import.meta.dirname, "artifacts", "state.json"), "utf8"));
}

let sql: postgres.Sql | null = null;
function db(): postgres.Sql {
  sql ??= postgres(state().databaseUrl, { max: 2, onnotice: () => {} });
  return sql;
}

/**
 * Create an MFA-verified session for the demo user of `role` straight in the database (the way
 * the server's SessionManager does: a random 32-byte token, stored as its SHA-256) and return
 * the raw token. Avoids one TOTP code per test (codes may not be reused within their window).
 */
export async function sessionFor(role: Role | { userId: string }): Promise<string> {
  const rows =
    typeof role === "string"
      ? await db()<
          { id: string }[]
        >`SELECT id FROM users WHERE role = ${role} ORDER BY created_at LIMIT 1`
      : [{ id: role.userId }];
  const userId = rows[0]?.id;
  if (!userId) throw new Error(`no demo ${JSON.stringify(role)} user`);
  const token = randomBytes(32).toString("base64url");
  const id = createHash("sha256").update(token).digest("hex");
  const now = new Date();
  await db()`INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, mfa_verified, ip, user_agent)
    VALUES (${id}, ${userId}, ${now}, ${new Date(now.getTime() + 8 * 3_600_000)}, ${now}, true, null, 'e2e')`;
  return token;
}

/** Put a fresh `role` session cookie into `context` (HttpOnly, as the server sets it). */
export async function signInAs(context: BrowserContext, role: Role): Promise<string> {
  const token = await sessionFor(role);
  await context.addCookies([
    { name: "haven_session", value: token, url: state().url, httpOnly: true, sameSite: "Lax" },
  ]);
  return token;
}

/** A bearer client for setup steps (availability hours, looking up ids). */
export async function apiAs(role: Role): Promise<HavenClient> {
  return createHavenClient({ url: state().url, token: await sessionFor(role) });
}

/** Run a raw query against the e2e database (test setup/assertions only). */
export function query<T extends object>(text: string, params: unknown[] = []): Promise<T[]> {
  return db().unsafe(text, params as never[]) as unknown as Promise<T[]>;
}

/**
 * axe-core on the current page: no serious or critical violation (WCAG 2.x A/AA rules), and a
 * full-page screenshot at the current size in `e2e/artifacts/screens/<name>-<w>x<h>.png`.
 */
export async function checkScreen(page: Page, name: string): Promise<void> {
  const results = await new AxeBuilder({ page })
    .withTags(["wcag2a", "wcag2aa", "wcag21aa"])
    .analyze();
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(
    bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    `axe on ${name}`,
  ).toEqual([]);
  const vp = page.viewportSize();
  await page.screenshot({
    path: join(
      import.meta.dirname,
      "artifacts",
      "screens",
      `${name}-${vp?.width}x${vp?.height}.png`,
    ),
    fullPage: true,
  });
}

/** Check a screen at 1280×800 and again at 390×844. */
export async function checkBothSizes(page: Page, name: string): Promise<void> {
  await page.setViewportSize({ width: 1280, height: 800 });
  await checkScreen(page, name);
  await page.setViewportSize({ width: 390, height: 844 });
  await checkScreen(page, name);
  await page.setViewportSize({ width: 1280, height: 800 });
}

export const test = base;
export { expect };
