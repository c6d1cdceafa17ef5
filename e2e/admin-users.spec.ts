import { randomUUID } from "node:crypto";
import { createHavenClient } from "@haven/client";
import { TOTP } from "otpauth";
import { checkBothSizes, expect, query, signInAs, state, test } from "./fixtures.ts";
import { mailTo } from "./mail-sink.ts";

/** The accept link in an invitation e-mail (what the invitee clicks). */
function linkIn(text: string | null): string {
  const m = /(https?:\/\/\S+\/accept-invitation#token=[A-Za-z0-9_-]{43})/.exec(text ?? "");
  if (!m?.[1]) throw new Error(`no invitation link in: ${text}`);
  return m[1];
}

test("an admin invites a user in the UI; the invitee accepts in another browser, sets a password, enrols TOTP and is signed in", async ({
  page,
  context,
  browser,
}) => {
  await signInAs(context, "admin");
  await page.goto("/admin/");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Users" }).click();
  await expect(page.getByRole("heading", { name: "Users", level: 1 })).toBeVisible();
  await expect(page.getByRole("table").first()).toBeVisible();
  await checkBothSizes(page, "06-users");

  const email = `invitee.${Date.now().toString(36)}@clinic.example`;
  const invite = page.getByRole("form", { name: "Invite a user" });
  // The server's field message for a bad address shows under the field.
  await invite.getByLabel("E-mail").fill("not-an-address");
  await invite.getByRole("button", { name: "Send invitation" }).click();
  await expect(invite.getByLabel("E-mail")).toHaveAttribute("aria-invalid", "true");
  await invite.getByLabel("E-mail").fill(email);
  await invite.getByLabel("Role").selectOption("staff");
  await invite.getByRole("button", { name: "Send invitation" }).click();
  await expect(
    page.getByRole("status").filter({ hasText: `Invitation e-mailed to ${email}` }),
  ).toBeVisible();
  await checkBothSizes(page, "06-users-invited");

  // The invitation reaches the invitee by e-mail (real SMTP to the e2e sink); a second browser.
  const link = linkIn((await mailTo(email)).text);
  expect(new URL(link).origin).toBe(state().url);
  const inviteeCtx = await browser.newContext();
  const invitee = await inviteeCtx.newPage();
  await invitee.goto(link);
  await expect(invitee.getByRole("heading", { name: "Accept your invitation" })).toBeVisible();
  // The single-use token leaves the address bar at once.
  await expect(invitee).toHaveURL(/\/admin\/accept-invitation$/);
  await checkBothSizes(invitee, "06-accept-invitation");

  // The server's password policy answers at the field.
  await invitee.getByLabel("New password", { exact: true }).fill("password1234");
  await invitee.getByLabel("Repeat the password").fill("password1234");
  await invitee.getByRole("button", { name: "Create account" }).click();
  const pw = invitee.getByLabel("New password", { exact: true });
  await expect(pw).toHaveAttribute("aria-invalid", "true");
  await expect(invitee.getByText(/too common or too easy to guess/)).toBeVisible();
  await checkBothSizes(invitee, "06-accept-invitation-error");

  const password = "Lantern-quarry-oboe-7-fjord";
  await pw.fill(password);
  await invitee.getByLabel("Repeat the password").fill(password);
  await invitee.getByRole("button", { name: "Create account" }).click();

  // Then the authenticator enrolment of the sign-in screen.
  await expect(invitee.getByRole("heading", { name: "Set up your authenticator" })).toBeVisible();
  await invitee.getByRole("button", { name: "Show my QR code" }).click();
  const secret = (await invitee.getByTestId("totp-secret").textContent())?.trim() ?? "";
  expect(secret).toMatch(/^[A-Z2-7]+=*$/);
  await checkBothSizes(invitee, "06-accept-enrol");
  await invitee.getByLabel("6-digit code").fill(new TOTP({ secret }).generate());
  await invitee.getByRole("button", { name: "Confirm" }).click();
  await expect(invitee.getByRole("heading", { name: "Your recovery codes" })).toBeVisible();
  await invitee.getByRole("button", { name: /I have saved them/ }).click();
  await expect(invitee.getByRole("heading", { name: "Schedule" })).toBeVisible();
  await expect(invitee.getByText("Signed in as staff")).toBeVisible();

  // The admin sees the new account, enrolled, and no open invitation for it; the link cannot be
  // used twice.
  await page.reload();
  await expect(page.getByRole("heading", { name: "Open invitations" })).toBeVisible();
  await expect(page.getByRole("rowheader", { name: email, exact: true })).toHaveCount(1);
  const row = page.getByTestId(`user-${email}`);
  await expect(row).toContainText("Active");
  await expect(row).toContainText("Set up");
  const again = await browser.newContext();
  const againPage = await again.newPage();
  await againPage.goto(link);
  await againPage.getByLabel("New password", { exact: true }).fill(password);
  await againPage.getByLabel("Repeat the password").fill(password);
  await againPage.getByRole("button", { name: "Create account" }).click();
  await expect(againPage.getByRole("alert")).toHaveText(/not valid any more/);
  await again.close();

  // Inviting the same address again is a CONFLICT, explained in words.
  await invite.getByLabel("E-mail").fill(email);
  await invite.getByRole("button", { name: "Send invitation" }).click();
  await expect(
    page.getByRole("alert").filter({ hasText: /conflicts with an existing record/ }),
  ).toBeVisible();

  // Role change ends the invitee's session: their panel goes back to sign-in.
  await row.getByRole("combobox", { name: `Role of ${email}` }).selectOption("clinician");
  await row.getByRole("button", { name: `Change the role of ${email}` }).click();
  const dialog = page.getByRole("alertdialog");
  await expect(dialog).toBeVisible();
  await checkBothSizes(page, "06-users-confirm");
  await dialog.getByRole("button", { name: "Change role" }).click();
  await expect(
    page.getByRole("status").filter({ hasText: `${email} is now clinician. 1 session ended.` }),
  ).toBeVisible();
  await invitee.reload();
  await expect(invitee.getByRole("heading", { name: "Sign in" })).toBeVisible();

  // Disable, then enable; reset MFA.
  await row.getByRole("button", { name: `Disable ${email}` }).click();
  await page.getByRole("alertdialog").getByRole("button", { name: "Disable account" }).click();
  await expect(row).toContainText("Disabled");
  await row.getByRole("button", { name: `Enable ${email}` }).click();
  await page.getByRole("alertdialog").getByRole("button", { name: "Enable account" }).click();
  await expect(row).toContainText("Active");
  await row.getByRole("button", { name: `Reset the authenticator of ${email}` }).click();
  await page.getByRole("alertdialog").getByRole("button", { name: "Reset MFA" }).click();
  await expect(row).toContainText("Not set up");
  const audited = await query<{ action: string }>(
    `SELECT DISTINCT action FROM audit_events WHERE resource_id = (
       SELECT resource_id FROM audit_events WHERE action = 'auth.mfa_reset' ORDER BY occurred_at DESC LIMIT 1)
     ORDER BY action`,
  );
  expect(audited.map((a) => a.action)).toContain("auth.mfa_reset");

  // The admin's own row cannot be changed from here (the server refuses `self` anyway).
  const mine = page.getByRole("row").filter({ hasText: "(you)" });
  await expect(mine.getByRole("button")).toHaveCount(0);
  await inviteeCtx.close();
});

test("an admin revokes an invitation, and its link stops working", async ({
  page,
  context,
  browser,
}) => {
  await signInAs(context, "admin");
  await page.goto("/admin/users");
  const email = `revoked.${Date.now().toString(36)}@clinic.example`;
  const invite = page.getByRole("form", { name: "Invite a user" });
  await invite.getByLabel("E-mail").fill(email);
  await invite.getByRole("button", { name: "Send invitation" }).click();
  // Reload only once the server has answered: a reload while the mutation is in flight cancels it.
  await expect(
    page.getByRole("status").filter({ hasText: `Invitation e-mailed to ${email}` }),
  ).toBeVisible();
  // The open invitations come from the API (auth.invitations.list), so a reload still lists it.
  await page.reload();
  const open = page.getByRole("table", { name: "Open invitations" });
  await expect(open).toContainText(email);
  await checkBothSizes(page, "06-users-open-invitations");
  await open.getByRole("button", { name: `Revoke the invitation for ${email}` }).click();
  await expect(
    page.getByRole("status").filter({ hasText: `Invitation for ${email} revoked` }),
  ).toBeVisible();
  await expect(page.getByText(email, { exact: true })).toHaveCount(0);

  const link = linkIn((await mailTo(email)).text);
  const other = await browser.newContext();
  const p2 = await other.newPage();
  await p2.goto(link);
  await p2.getByLabel("New password", { exact: true }).fill("Lantern-quarry-oboe-7-fjord");
  await p2.getByLabel("Repeat the password").fill("Lantern-quarry-oboe-7-fjord");
  await p2.getByRole("button", { name: "Create account" }).click();
  await expect(p2.getByRole("alert")).toHaveText(/not valid any more/);
  await other.close();
});

test("an API key is created, its secret shown once with a copy button, listed by prefix and revoked", async ({
  page,
  context,
}) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: state().url });
  await signInAs(context, "admin");
  await page.goto("/admin/users");
  const keys = page.getByRole("form", { name: "Create an API key" });
  await keys.getByRole("button", { name: "Create API key" }).click();
  await expect(keys.getByLabel("Key name")).toHaveAttribute("aria-invalid", "true");

  const name = `cron ${Date.now().toString(36)}`;
  await keys.getByLabel("Key name").fill(name);
  await keys.getByRole("button", { name: "Create API key" }).click();
  const shown = page.getByTestId("new-key");
  await expect(shown.getByRole("alert")).toHaveText(/only time the key is shown/);
  const secret = (await page.getByTestId("api-key-secret").textContent())?.trim() ?? "";
  expect(secret.length).toBeGreaterThan(20);
  await checkBothSizes(page, "06-api-key-created");

  await shown.getByRole("button", { name: "Copy key" }).click();
  await expect(shown.getByRole("status")).toHaveText("Copied to the clipboard.");
  expect(
    await page.evaluate(() =>
      (
        globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }
      ).navigator.clipboard.readText(),
    ),
  ).toBe(secret);

  // The key works as a bearer credential; the list shows only its prefix.
  // A reminder the key does not hold: NOT_FOUND means the key itself was accepted.
  const cron = createHavenClient({ url: state().url, token: secret });
  const probe = () =>
    cron.reminders.complete.mutate({ id: randomUUID(), version: 1, outcome: "released" });
  await expect(probe()).rejects.toMatchObject({ data: { code: "NOT_FOUND" } });
  const row = page.getByTestId(`key-${name}`);
  await expect(row).toContainText("Active");
  const prefix = (await row.locator("code").textContent())?.replace("…", "") ?? "";
  expect(secret.startsWith(prefix)).toBe(true);

  // Once hidden (or after a reload), the secret is nowhere on the page again.
  await shown.getByRole("button", { name: /hide the key/ }).click();
  await expect(page.getByTestId("new-key")).toHaveCount(0);
  await page.reload();
  await expect(page.getByTestId(`key-${name}`)).toBeVisible();
  expect(await page.content()).not.toContain(secret);

  await page.getByRole("button", { name: `Revoke the key ${name}` }).click();
  await page.getByRole("alertdialog").getByRole("button", { name: "Revoke key" }).click();
  await expect(page.getByTestId(`key-${name}`)).toContainText("Revoked");
  await expect(probe()).rejects.toMatchObject({ data: { code: "UNAUTHORIZED" } });
});
