import { TOTP } from "otpauth";
import { apiAs, checkBothSizes, expect, query, signInAs, state, test } from "./fixtures.ts";

const PATIENT = { mrn: "475d72ca-91c7-7211-97e3-f000af33fc04", family: "Schowalter414" };

function tomorrowIn(timeZone: string): string {
  const d = new Date(Date.now() + 86_400_000);
  return new Intl.DateTimeFormat("en-CA", { timeZone }).format(d);
}

test("full UI sign-in with password and TOTP lands on the schedule", async ({ page }) => {
  const s = state();
  await page.goto("/admin/");
  await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  await checkBothSizes(page, "01-sign-in");
  await page.getByLabel("E-mail").fill(s.emails.staff ?? "");
  await page.getByLabel("Password").fill(s.passwords.staff ?? "");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("heading", { name: "Authenticator code" })).toBeVisible();
  await checkBothSizes(page, "01-sign-in-totp");
  await page.getByLabel("6-digit code").fill("000000");
  await page.getByRole("button", { name: "Verify" }).click();
  await expect(page.getByRole("alert")).toBeVisible();
  const code = new TOTP({ secret: s.totp.staff ?? "" }).generate();
  await page.getByLabel("6-digit code").fill(code);
  await page.getByRole("button", { name: "Verify" }).click();
  await expect(page.getByRole("heading", { name: "Schedule" })).toBeVisible();
  const cookies = await page.context().cookies();
  expect(cookies.find((c) => c.name === "haven_session")?.httpOnly).toBe(true);
  expect(
    await page.evaluate(() =>
      Object.keys((globalThis as unknown as { localStorage: object }).localStorage),
    ),
  ).toEqual([]);
});

test("front desk books a free slot; a second context's schedule updates without reload", async ({
  browser,
}) => {
  const api = await apiAs("staff");
  const clinic = await api.appointments.practitioners.query({});
  const practitioner = clinic.items[0];
  if (!practitioner) throw new Error("demo clinic has no practitioner");
  await api.appointments.availability.setWeekly.mutate({
    practitionerId: practitioner.id,
    hours: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({
      weekday,
      start: "08:00",
      end: "17:00",
      slotMinutes: 30,
    })),
  });
  const date = tomorrowIn(clinic.timeZone);
  const path = `/admin/schedule?practitioner=${practitioner.id}&date=${date}`;

  const watcherCtx = await browser.newContext();
  await signInAs(watcherCtx, "staff");
  const watcher = await watcherCtx.newPage();
  await watcher.goto(path);
  await expect(watcher.getByTestId("live-status")).toHaveText(/Live updates: on/);
  const before = await watcher.locator(".appt").count();

  const deskCtx = await browser.newContext();
  await signInAs(deskCtx, "staff");
  const desk = await deskCtx.newPage();
  await desk.goto(path);
  await expect(desk.getByRole("heading", { name: "Schedule" })).toBeVisible();
  await expect(desk.getByTestId("calendar")).toBeVisible();
  await checkBothSizes(desk, "02-schedule");
  await desk.locator(".slot").first().click();
  const dialog = desk.getByRole("dialog");
  await expect(dialog).toBeVisible();
  await dialog.getByRole("textbox", { name: "MRN" }).fill(PATIENT.mrn);
  await dialog.getByRole("button", { name: "Search" }).click();
  await dialog.getByRole("button", { name: /Choose/ }).click();
  await checkBothSizes(desk, "03-book");
  await dialog.getByLabel("Visit reason (optional)").fill("Follow-up");
  await dialog.getByRole("button", { name: "Book appointment" }).click();
  await expect(dialog).toBeHidden();
  await expect(desk.locator(".appt", { hasText: PATIENT.family })).toHaveCount(1);

  // The other browser never reloads: the SSE feed brings the booking in.
  await expect(watcher.locator(".appt")).toHaveCount(before + 1);
  await expect(watcher.locator(".appt", { hasText: PATIENT.family })).toBeVisible();

  // Check-in through the dialog, and a stale version from the other screen gets explained.
  await desk.locator(".appt", { hasText: PATIENT.family }).click();
  await checkBothSizes(desk, "03-appointment");
  await desk.getByRole("button", { name: "Check in" }).click();
  await expect(desk.getByTestId("appt-status")).toHaveText("checked in");
  await watcherCtx.close();
  await deskCtx.close();
});

test("an idle staff session is signed out with a message", async ({ page, context }) => {
  await page.clock.install();
  await signInAs(context, "staff");
  await page.goto("/admin/schedule");
  await expect(page.getByRole("heading", { name: "Schedule" })).toBeVisible();
  await page.clock.fastForward("16:00");
  await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  await expect(page.getByText(/signed out because the session was idle/)).toBeVisible();
  await checkBothSizes(page, "01-signed-out-idle");
});

test("a clinician opens a related patient's chart and gets a clear, audited refusal for an unrelated one", async ({
  page,
  context,
}) => {
  const [clinician] = await query<{ practitioner: string }>(
    `SELECT p.id AS practitioner FROM practitioners p JOIN users u ON u.id = p.user_id
      WHERE u.role = 'clinician' ORDER BY u.created_at LIMIT 1`,
  );
  const [related] = await query<{ id: string }>(
    `SELECT patient_id AS id FROM care_relationships WHERE practitioner_id = $1
      AND (valid_to IS NULL OR valid_to > now()) LIMIT 1`,
    [clinician?.practitioner],
  );
  const [unrelated] = await query<{ id: string }>(
    `SELECT id FROM patients WHERE id NOT IN
      (SELECT patient_id FROM care_relationships WHERE practitioner_id = $1) LIMIT 1`,
    [clinician?.practitioner],
  );
  if (!related || !unrelated) throw new Error("demo data lacks a related/unrelated patient");
  await signInAs(context, "clinician");
  await page.goto(`/admin/patients/${related.id}`);
  await expect(page.getByRole("heading", { name: "Demographics" })).toBeVisible();
  await checkBothSizes(page, "04-chart");
  await page.goto(`/admin/patients/${unrelated.id}`);
  await expect(
    page.getByRole("heading", { name: "You do not have access to this patient's chart" }),
  ).toBeVisible();
  await checkBothSizes(page, "04-chart-refused");
  const denied = await query<{ n: number }>(
    `SELECT count(*)::int AS n FROM audit_events WHERE patient_id = $1 AND outcome = 'denied'`,
    [unrelated.id],
  );
  expect(denied[0]?.n).toBeGreaterThan(0);
  await page.goto("/admin/patients");
  await checkBothSizes(page, "04-patient-search");
});
