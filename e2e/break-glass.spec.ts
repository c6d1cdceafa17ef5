import { setTimeout as sleep } from "node:timers/promises";
import { TOTP } from "otpauth";
import { checkBothSizes, expect, query, signInAs, state, test } from "./fixtures.ts";

/**
 * A TOTP code from a step after any the server has accepted for the demo clinician (it refuses a
 * reused step): other specs of the run (sign-in, the audit review) spend the same user's codes, so
 * the last accepted step is read from the database, not remembered here.
 */
async function freshCode(secret: string): Promise<string> {
  const totp = new TOTP({ secret });
  const [row] = await query<{ last: string | null }>(
    "SELECT totp_last_step::text AS last FROM users WHERE role = 'clinician' ORDER BY created_at LIMIT 1",
  );
  const after = row?.last === null || row?.last === undefined ? null : Number(row.last);
  const step = Math.floor(Date.now() / 1000 / totp.period);
  if (after !== null && step <= after) {
    await sleep(((after + 1) * totp.period + 0.5) * 1000 - Date.now());
  }
  return totp.generate();
}

let moved: { id: string; org: string } | null = null;
test.afterEach(async () => {
  if (moved)
    await query(`UPDATE patients SET organization_id = $1 WHERE id = $2`, [moved.org, moved.id]);
  moved = null;
});

test("a refused clinician breaks the glass: reason + fresh TOTP, banner with time left, audited, ended early and at expiry", async ({
  page,
  context,
}) => {
  const [clinician] = await query<{ userId: string; practitioner: string; org: string }>(
    `SELECT u.id AS "userId", p.id AS practitioner, u.organization_id AS org
       FROM practitioners p JOIN users u ON u.id = p.user_id
      WHERE u.role = 'clinician' ORDER BY u.created_at LIMIT 1`,
  );
  if (!clinician) throw new Error("demo data has no clinician");
  // The demo data holds one patient per organization, so the test makes the situation
  // break-the-glass exists for: another patient moves into the clinician's organization (no care
  // relationship with this clinician), and moves back at the end.
  const [first] = await query<{ id: string; org: string }>(
    `SELECT id, organization_id AS org FROM patients WHERE organization_id <> $1
      AND id NOT IN (SELECT patient_id FROM care_relationships WHERE practitioner_id = $2)
      ORDER BY id DESC LIMIT 1`,
    [clinician.org, clinician.practitioner],
  );
  if (!first) throw new Error("demo data lacks a patient of another organization");
  await query(`UPDATE patients SET organization_id = $1 WHERE id = $2`, [clinician.org, first.id]);
  moved = first;
  const secret = state().totp.clinician ?? "";

  await signInAs(context, "clinician");
  await page.goto(`/admin/patients/${first.id}`);
  await expect(
    page.getByRole("heading", { name: "You do not have access to this patient's chart" }),
  ).toBeVisible();
  const form = page.getByRole("form", { name: "Emergency access (break the glass)" });
  await expect(form).toBeVisible();
  await checkBothSizes(page, "05-break-glass-form");

  // The server's zod messages land under their fields.
  await form.getByLabel("Reason for emergency access").fill("now");
  await form.getByLabel("6-digit authenticator code").fill("12");
  await form.getByRole("button", { name: /Break the glass/ }).click();
  await expect(
    form.getByText("state the reason for emergency access (at least 10 characters)"),
  ).toBeVisible();
  await expect(form.getByText("enter the 6-digit code from your authenticator")).toBeVisible();
  await expect(form.getByLabel("Reason for emergency access")).toHaveAttribute(
    "aria-invalid",
    "true",
  );
  await checkBothSizes(page, "05-break-glass-errors");

  const reason = "Unconscious in the ED, no relationship on file; need allergies now";
  const one = await freshCode(secret);
  await form.getByLabel("Reason for emergency access").fill(reason);
  await form.getByLabel("6-digit authenticator code").fill(one);
  await form.getByRole("button", { name: /Break the glass/ }).click();

  // The chart opens under the grant, with the banner counting down from the grant's expiry.
  await expect(page.getByRole("heading", { name: "Demographics" })).toBeVisible();
  const banner = page.getByTestId("emergency");
  await expect(banner.getByRole("status")).toHaveText(
    /break-the-glass access until \d\d:\d\d UTC: about (59|60) minutes left/,
  );
  const left = page.getByTestId("emergency-left");
  const t0 = await left.textContent();
  expect(t0).toMatch(/^(1:00:00|59:\d\d)$/);
  await expect(left).not.toHaveText(t0 ?? "");
  await checkBothSizes(page, "05-break-glass-banner");

  // Audited server-side: the grant (allowed, reason break_glass) and the read made under it.
  const [grant] = await query<{ id: string; minutes: number }>(
    `SELECT id, round(extract(epoch FROM expires_at - granted_at) / 60)::int AS minutes
       FROM break_glass_grants WHERE patient_id = $1 AND user_id = $2`,
    [first.id, clinician.userId],
  );
  expect(grant?.minutes).toBe(60);
  const audited = await query<{ action: string; n: number }>(
    `SELECT action, count(*)::int AS n FROM audit_events
      WHERE patient_id = $1 AND actor_user_id = $2 AND outcome = 'allowed'
        AND action IN ('access.break_glass', 'access.break_glass_used')
      GROUP BY action ORDER BY action`,
    [first.id, clinician.userId],
  );
  expect(audited.map((a) => a.action)).toEqual(["access.break_glass", "access.break_glass_used"]);

  // Ending it early: access.revoke, the chart closes and the server refuses it again.
  await banner.getByRole("button", { name: "End emergency access now" }).click();
  await expect(page.getByTestId("emergency-ended")).toHaveText(/You ended emergency access at/);
  await expect(
    page.getByRole("heading", { name: "You do not have access to this patient's chart" }),
  ).toBeVisible();
  await expect(page.getByRole("heading", { name: "Demographics" })).toBeHidden();
  await checkBothSizes(page, "05-break-glass-ended");
  const [revoked] = await query<{ revoked: boolean }>(
    `SELECT revoked_at IS NOT NULL AS revoked FROM break_glass_grants WHERE id = $1`,
    [grant?.id],
  );
  expect(revoked?.revoked).toBe(true);
  // The panel closes the chart as soon as the revoke returns and then asks the server again; the
  // refusal of that read (audited as denied) may land a moment after the heading shows.
  await expect
    .poll(
      async () =>
        (
          await query<{ n: number }>(
            `SELECT count(*)::int AS n FROM audit_events WHERE patient_id = $1 AND actor_user_id = $2
               AND outcome = 'denied' AND occurred_at > (SELECT revoked_at FROM break_glass_grants WHERE id = $3)`,
            [first.id, clinician.userId, grant?.id],
          )
        )[0]?.n ?? 0,
      { timeout: 10_000 },
    )
    .toBeGreaterThan(0);

  // Expiry: a second grant (the next TOTP window: codes may not be reused), then its end comes.
  const form2 = page.getByRole("form", { name: "Emergency access (break the glass)" });
  const two = await freshCode(secret);
  await form2.getByLabel("Reason for emergency access").fill(reason);
  await form2.getByLabel("6-digit authenticator code").fill(two);
  await form2.getByRole("button", { name: /Break the glass/ }).click();
  await expect(page.getByTestId("emergency")).toBeVisible();
  // Shorten the grant to a few seconds on the server, reopen the chart: the banner counts the
  // last seconds down, says the access expired, and the server refuses the chart again.
  await query(
    `UPDATE break_glass_grants SET expires_at = now() + interval '8 seconds'
      WHERE patient_id = $1 AND revoked_at IS NULL`,
    [first.id],
  );
  await page.reload();
  await expect(page.getByTestId("emergency-left")).toHaveText(/^0:0\d$/);
  await expect(page.getByTestId("emergency-ended")).toHaveText(
    /Your emergency access to this chart expired at \d\d:\d\d UTC/,
  );
  await expect(
    page.getByRole("form", { name: "Emergency access (break the glass)" }),
  ).toBeVisible();
  await expect(page.getByRole("heading", { name: "Demographics" })).toBeHidden();
  await checkBothSizes(page, "05-break-glass-expired");
});
