import { apiAs, checkBothSizes, expect, signInAs, test } from "./fixtures.ts";

const PATIENT = { mrn: "475d72ca-91c7-7211-97e3-f000af33fc04", family: "Schowalter414" };

const WEEK = [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({
  weekday,
  start: "08:00",
  end: "17:00",
  slotMinutes: 30,
}));

function dayIn(timeZone: string, daysAhead: number): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone }).format(
    new Date(Date.now() + daysAhead * 86_400_000),
  );
}

const drafts = () =>
  Object.fromEntries(
    Object.keys(sessionStorage)
      .filter((k) => k.startsWith("haven.draft."))
      .map((k) => [k, sessionStorage.getItem(k)]),
  );

test("an idle session is warned a minute ahead, can stay signed in, and keeps typed text across the sign-out", async ({
  page,
  context,
}) => {
  const api = await apiAs("staff");
  const clinic = await api.appointments.practitioners.query({});
  const practitioner = clinic.items[0];
  if (!practitioner) throw new Error("demo clinic has no practitioner");
  await api.appointments.availability.setWeekly.mutate({
    practitionerId: practitioner.id,
    hours: WEEK,
  });
  const schedule = `/admin/schedule?practitioner=${practitioner.id}&date=${dayIn(clinic.timeZone, 2)}`;
  const reason = "Knee pain, follow-up after physiotherapy";

  await page.clock.install();
  await signInAs(context, "staff");
  await page.goto(schedule);
  await expect(page.getByTestId("calendar")).toBeVisible();
  await page.locator(".slot").first().click();
  const book = page.getByRole("dialog");
  await book.getByRole("textbox", { name: "MRN" }).fill(PATIENT.mrn);
  await book.getByRole("button", { name: "Search" }).click();
  await book.getByRole("button", { name: /Choose/ }).click();
  await book.getByLabel("Visit reason (optional)").fill(reason);

  // 14 minutes of nothing (the demo's idle timeout is 15): the warning, with a countdown.
  await page.clock.fastForward("14:01");
  const warning = page.getByRole("alertdialog", { name: "Are you still there?" });
  await expect(warning).toBeVisible();
  // About a minute left (the page clock runs on in real time after the jump).
  const left = Number((await page.getByTestId("idle-countdown").textContent())?.split(" ")[0]);
  expect(left).toBeGreaterThan(30);
  expect(left).toBeLessThanOrEqual(60);
  await expect(warning.getByRole("button", { name: "Stay signed in" })).toBeFocused();
  await checkBothSizes(page, "00-idle-warning");
  const refreshed = page.waitForResponse((r) => r.url().includes("/trpc/auth.me") && r.ok());
  await warning.getByRole("button", { name: "Stay signed in" }).press("Enter");
  await refreshed;
  await expect(warning).toBeHidden();
  await expect(book.getByLabel("Visit reason (optional)")).toHaveValue(reason);

  // Staying restarted the clock: nothing at 13 minutes, the warning again at 14, out at 15.
  await page.clock.fastForward("13:00");
  await expect(warning).toBeHidden();
  await page.clock.fastForward("01:01");
  await expect(warning).toBeVisible();
  await page.clock.fastForward("01:00");
  await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  await expect(page.getByText(/signed out because the session was idle/)).toBeVisible();
  await expect(page.getByText(reason)).toHaveCount(0);
  // The typed reason rests in this tab's sessionStorage only, tagged with its author.
  const kept = Object.values(await page.evaluate(drafts));
  expect(kept).toHaveLength(1);
  expect(JSON.parse(kept[0] ?? "{}")).toMatchObject({ value: reason });
  expect(await page.evaluate(() => Object.keys(localStorage))).toEqual([]);

  // Signing back in (a fresh session for the same account) offers the text again.
  await signInAs(context, "staff");
  await page.reload();
  const notice = page.getByRole("region", { name: "Unsaved text was kept" });
  await expect(notice).toBeVisible();
  await checkBothSizes(page, "00-draft-restored");
  await notice.getByRole("link", { name: /Visit reason for a booking/ }).click();
  await expect(page.getByTestId("calendar")).toBeVisible();
  await page.locator(".slot").first().click();
  await book.getByRole("textbox", { name: "MRN" }).fill(PATIENT.mrn);
  await book.getByRole("button", { name: "Search" }).click();
  await book.getByRole("button", { name: /Choose/ }).click();
  await expect(book.getByLabel("Visit reason (optional)")).toHaveValue(reason);
  await expect(
    book.getByText("Restored: the text you typed before you were signed out."),
  ).toBeVisible();
  await book.getByRole("button", { name: "Book appointment" }).click();
  await expect(book).toBeHidden();
  await expect(page.locator(".appt", { hasText: PATIENT.family })).toBeVisible();
  // Submitted: the draft is gone.
  expect(await page.evaluate(drafts)).toEqual({});
});

test("a deliberate sign-out takes unsaved text with it", async ({ page, context }) => {
  const api = await apiAs("staff");
  const clinic = await api.appointments.practitioners.query({});
  const practitioner = clinic.items[0];
  if (!practitioner) throw new Error("demo clinic has no practitioner");
  await api.appointments.availability.setWeekly.mutate({
    practitionerId: practitioner.id,
    hours: WEEK,
  });
  await signInAs(context, "staff");
  await page.goto(
    `/admin/schedule?practitioner=${practitioner.id}&date=${dayIn(clinic.timeZone, 3)}`,
  );
  await page.locator(".slot").first().click();
  const book = page.getByRole("dialog");
  await book.getByRole("textbox", { name: "MRN" }).fill(PATIENT.mrn);
  await book.getByRole("button", { name: "Search" }).click();
  await book.getByRole("button", { name: /Choose/ }).click();
  await book.getByLabel("Visit reason (optional)").fill("Typed, then left");
  expect(Object.keys(await page.evaluate(drafts))).toHaveLength(1);
  await book.getByRole("button", { name: "Close" }).click();
  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  expect(await page.evaluate(drafts)).toEqual({});
});
