import type { HavenClient } from "@haven/client";
import { apiAs, checkBothSizes, expect, query, signInAs, test } from "./fixtures.ts";

const PATIENT = { mrn: "475d72ca-91c7-7211-97e3-f000af33fc04" };

function dayIn(timeZone: string, daysAhead: number): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone }).format(
    new Date(Date.now() + daysAhead * 86_400_000),
  );
}

/** Book the demo patient into the last free slot `daysAhead` days from now (clinic time). */
async function bookAhead(api: HavenClient, daysAhead: number) {
  const clinic = await api.appointments.practitioners.query({});
  const practitioner = clinic.items.at(-1);
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
  const [patient] = await api.patients.search.query({ mrn: PATIENT.mrn });
  if (!patient) throw new Error("demo patient missing");
  const day = dayIn(clinic.timeZone, daysAhead);
  const { slots } = await api.appointments.slots.query({
    practitionerId: practitioner.id,
    from: new Date(`${day}T00:00:00Z`),
    to: new Date(`${day}T23:59:00Z`),
  });
  const slot = slots.at(-1);
  if (!slot) throw new Error("no free slot ahead");
  return api.appointments.book.mutate({
    practitionerId: practitioner.id,
    patientId: patient.id,
    startsAt: slot.startsAt,
    endsAt: slot.endsAt,
  });
}

test("staff see the reminder queue, and a dead letter retried from the panel is queued again", async ({
  page,
  context,
}) => {
  // A booked visit four days ahead gets its reminders in the booking's transaction; one of them is
  // then dead-lettered the way the cron's worker leaves it after its last failed attempt.
  const api = await apiAs("staff");
  const appt = await bookAhead(api, 4);
  const [reminder] = await query<{ id: string }>(
    `SELECT id FROM reminders WHERE appointment_id = $1 ORDER BY offset_minutes DESC LIMIT 1`,
    [appt.id],
  );
  if (!reminder) throw new Error("the booking created no reminder");
  await query(
    `UPDATE reminders SET status = 'failed', attempts = 5, last_error = 'smtp_550_5.1.1',
        lease_until = NULL, version = version + 1, updated_at = now() WHERE id = $1`,
    [reminder.id],
  );
  const counts = async () =>
    Object.fromEntries(
      (
        await query<{ status: string; n: number }>(
          `SELECT status::text, count(*)::int AS n FROM reminders
            WHERE organization_id = (SELECT organization_id FROM users WHERE role = 'staff' ORDER BY created_at LIMIT 1)
            GROUP BY status`,
        )
      ).map((r) => [r.status, r.n]),
    ) as Record<string, number>;
  const before = await counts();

  await signInAs(context, "staff");
  await page.goto("/admin/reminders");
  await expect(page.getByRole("heading", { name: "Reminders", level: 1 })).toBeVisible();
  await expect(page.getByTestId("stat-failed")).toHaveText(String(before.failed ?? 0));
  await expect(page.getByTestId("stat-pending")).toHaveText(String(before.pending ?? 0));
  await expect(page.getByTestId("stat-sent")).toHaveText(String(before.sent ?? 0));
  await expect(page.getByRole("heading", { name: "Dead letters" })).toBeVisible();
  const row = page.locator(`tr[data-reminder-id="${reminder.id}"]`);
  await expect(row).toContainText("smtp_550_5.1.1");
  await expect(row).toContainText("5");
  await checkBothSizes(page, "08-reminders");

  await row.getByRole("button", { name: /^Retry/ }).click();
  await expect(page.getByTestId("retry-result")).toContainText("is back in the queue");
  await expect(page.getByTestId("retry-result")).toContainText("attempts reset to 0");
  await expect(page.locator(`tr[data-reminder-id="${reminder.id}"]`)).toHaveCount(0);
  await expect(page.getByTestId("stat-failed")).toHaveText(String((before.failed ?? 0) - 1));
  const [after] = await query<{ status: string; attempts: number }>(
    `SELECT status::text, attempts FROM reminders WHERE id = $1`,
    [reminder.id],
  );
  expect(after).toEqual({ status: "pending", attempts: 0 });
  await checkBothSizes(page, "08-reminders-retried");

  // The pending list now holds it; retrying a reminder that is not failed is refused in words.
  await page.getByLabel("Status").selectOption("pending");
  await expect(page.locator(`tr[data-reminder-id="${reminder.id}"]`)).toBeVisible();
  await expect(
    page.locator(`tr[data-reminder-id="${reminder.id}"]`).getByRole("button", { name: /^Retry/ }),
  ).toHaveCount(0);
  await expect(api.reminders.retry.mutate({ id: reminder.id })).rejects.toMatchObject({
    data: { code: "CONFLICT", reason: "not_failed" },
  });
  await api.appointments.cancel.mutate({
    appointmentId: appt.id,
    version: appt.version,
    reason: "e2e clean-up",
  });
});

test("the reminders screen pages dead letters with the API's cursor", async ({ page, context }) => {
  // 30 more dead letters than before (more than the screen's page of 25), on one booked visit.
  const api = await apiAs("staff");
  const appt = await bookAhead(api, 5);
  await query(
    `INSERT INTO reminders (id, organization_id, appointment_id, channel, offset_minutes, due_at,
                            status, attempts, next_attempt_at, last_error)
     SELECT gen_random_uuid(), a.organization_id, a.id, 'email', 1000 + i,
            a.starts_at - make_interval(mins => 1000 + i), 'failed', 5,
            a.starts_at - make_interval(mins => 1000 + i), 'smtp_451'
       FROM appointments a, generate_series(1, 30) AS i WHERE a.id = $1`,
    [appt.id],
  );
  const [count] = await query<{ n: number }>(
    `SELECT count(*)::int AS n FROM reminders WHERE status = 'failed'
        AND organization_id = (SELECT organization_id FROM appointments WHERE id = $1)`,
    [appt.id],
  );
  const total = count?.n ?? 0;
  expect(total).toBeGreaterThan(25);
  await signInAs(context, "staff");
  await page.goto("/admin/reminders");
  const table = page.getByTestId("reminder-list");
  await expect(table.locator("tbody tr")).toHaveCount(25);
  const ids = () =>
    table
      .locator("tbody tr")
      .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-reminder-id")));
  const first = await ids();
  const pages = page.getByRole("navigation", { name: "Reminders pages" });
  await pages.getByRole("button", { name: "Next page" }).click();
  await expect(page.getByTestId("page-number")).toHaveText("Page 2");
  await expect(table.locator("tbody tr")).toHaveCount(Math.min(25, total - 25));
  const second = await ids();
  expect(second.filter((id) => first.includes(id))).toEqual([]);
  await pages.getByRole("button", { name: "Previous page" }).click();
  await expect(page.getByTestId("page-number")).toHaveText("Page 1");
  expect(await ids()).toEqual(first);
});
