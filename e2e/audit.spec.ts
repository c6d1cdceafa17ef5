import { TOTP } from "otpauth";
import { apiAs, checkBothSizes, expect, query, signInAs, state, test } from "./fixtures.ts";

/** The Synthea demo patient the staff fixtures use (see panel.spec.ts). */
const PATIENT = { mrn: "475d72ca-91c7-7211-97e3-f000af33fc04", family: "Schowalter414" };

/** `YYYY-MM-DDTHH:mm` wall time of `t` in `timeZone` (what a datetime-local input takes). */
function localInput(t: Date, timeZone: string): string {
  const p = Object.fromEntries(
    new Intl.DateTimeFormat("en-CA", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
    })
      .formatToParts(t)
      .map((x) => [x.type, x.value]),
  );
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

/**
 * A patient of the demo clinician's clinic that the clinician has no care relationship with. Each
 * Synthea bundle brings its own organization, so the demo clinic may hold only related patients:
 * then one unrelated patient is moved into the clinic first (as a transfer between clinics would).
 */
async function unrelatedPatient(): Promise<string> {
  const find = (sameOrg: boolean) =>
    query<{ id: string; org: string }>(
      `SELECT p.id, c.org FROM patients p,
         (SELECT pr.id AS practitioner, u.organization_id AS org FROM practitioners pr
            JOIN users u ON u.id = pr.user_id WHERE u.role = 'clinician' ORDER BY u.created_at LIMIT 1) c
        WHERE ${sameOrg ? "p.organization_id = c.org" : "true"}
          AND p.id NOT IN (SELECT patient_id FROM care_relationships WHERE practitioner_id = c.practitioner)
        ORDER BY p.id LIMIT 1`,
    );
  const [inClinic] = await find(true);
  if (inClinic) return inClinic.id;
  const [other] = await find(false);
  if (!other) throw new Error("demo data lacks a patient unrelated to the clinician");
  await query(`UPDATE patients SET organization_id = $1 WHERE id = $2`, [other.org, other.id]);
  return other.id;
}

async function rowIds(table: import("@playwright/test").Locator): Promise<string[]> {
  return table
    .locator("tbody tr")
    .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-event-id") ?? ""));
}

test("an admin verifies the audit chain and sees it intact, with the head and count the database holds", async ({
  page,
  context,
}) => {
  await signInAs(context, "admin");
  await page.goto("/admin/audit?tab=verify");
  await expect(page.getByRole("heading", { name: "Audit", level: 1 })).toBeVisible();
  await expect(page.getByRole("tab", { name: "Chain verification" })).toHaveAttribute(
    "aria-selected",
    "true",
  );
  await checkBothSizes(page, "07-audit-verify");
  await page.getByRole("button", { name: "Verify the chain" }).click();
  const result = page.getByTestId("verify-result");
  await expect(result).toContainText("The audit chain is intact");
  const links = Number(await page.getByTestId("verify-links").textContent());
  const seq = Number(await page.getByTestId("verify-head-seq").textContent());
  const hash = (await page.getByTestId("verify-head-hash").textContent())?.trim();
  expect(links).toBeGreaterThan(0);
  // The links checked are exactly the chain up to the head reported, and the head is the row.
  const [db] = await query<{ n: number; hash: string }>(
    `SELECT (SELECT count(*)::int FROM audit_chain WHERE seq <= $1) AS n,
            (SELECT hash FROM audit_chain WHERE seq = $1) AS hash`,
    [seq],
  );
  expect(links).toBe(db?.n);
  expect(seq).toBe(db?.n);
  expect(hash).toBe(db?.hash);
  await checkBothSizes(page, "07-audit-verify-ok");
});

test("a changed audit event shows as the first broken link, and intact again once restored", async ({
  page,
  context,
}) => {
  await signInAs(context, "admin");
  // An event sealed early in the chain; change it behind the database's append-only trigger
  // (as a superuser bypassing it would), then put it back.
  const [link] = await query<{ seq: number; id: string; resource_type: string | null }>(
    `SELECT c.seq::int AS seq, e.id, e.resource_type FROM audit_chain c
       JOIN audit_events e ON e.id = c.event_id ORDER BY c.seq LIMIT 1 OFFSET 2`,
  );
  if (!link) throw new Error("audit chain is empty");
  const original = link.resource_type === null ? "NULL" : `'${link.resource_type}'`;
  await query(
    `SET LOCAL session_replication_role = replica;
     UPDATE audit_events SET resource_type = 'Tampered' WHERE id = '${link.id}'`,
  );
  try {
    await page.goto("/admin/audit?tab=verify");
    await page.getByRole("button", { name: "Verify the chain" }).click();
    await expect(page.getByTestId("verify-result")).toContainText("The audit chain is broken");
    await expect(page.getByTestId("verify-first-broken")).toContainText(`#${link.seq}`);
    await expect(page.getByTestId("verify-first-broken")).toContainText(link.id);
    await expect(page.getByTestId("verify-first-broken")).toContainText(
      "changed after it was sealed",
    );
    await checkBothSizes(page, "07-audit-verify-broken");
  } finally {
    await query(
      `SET LOCAL session_replication_role = replica;
       UPDATE audit_events SET resource_type = ${original} WHERE id = '${link.id}'`,
    );
  }
  await page.getByRole("button", { name: "Verify the chain" }).click();
  await expect(page.getByTestId("verify-result")).toContainText("The audit chain is intact");
});

test("audit search filters by actor, action, outcome and time, and pages with the API's cursor", async ({
  page,
  context,
}) => {
  const staff = await apiAs("staff");
  const clinic = await staff.appointments.practitioners.query({});
  const [found] = await staff.patients.search.query({ mrn: PATIENT.mrn });
  if (!found) throw new Error("demo patient missing");
  const [staffUser] = await query<{ id: string }>(
    `SELECT id FROM users WHERE role = 'staff' ORDER BY created_at LIMIT 1`,
  );
  if (!staffUser) throw new Error("no staff user");
  // The range starts at this minute in the clinic's zone; 57 reads land in it (> one page of 50).
  const start = new Date(Math.floor(Date.now() / 60_000) * 60_000);
  for (let i = 0; i < 57; i++) await staff.patients.get.query({ patientId: found.id });
  const expected = (
    await query<{ id: string }>(
      `SELECT id FROM audit_events WHERE actor_user_id = $1 AND action = 'patient.read'
          AND outcome = 'allowed' AND occurred_at >= $2 ORDER BY occurred_at DESC, id DESC`,
      [staffUser.id, start],
    )
  ).map((r) => r.id);
  expect(expected.length).toBeGreaterThanOrEqual(57);

  await signInAs(context, "admin");
  await page.goto("/admin/audit");
  await expect(page.getByRole("heading", { name: "Search the audit trail" })).toBeVisible();
  await page.getByLabel("Actor").selectOption({ label: `${state().emails.staff} (staff)` });
  await page.getByLabel("Action").selectOption("patient.read");
  await page.getByLabel("Outcome").selectOption("allowed");
  await page.getByLabel("From (inclusive)").fill(localInput(start, clinic.timeZone));
  await page.getByRole("button", { name: "Search", exact: true }).click();
  const table = page.getByTestId("audit-results");
  await expect(table.locator("tbody tr")).toHaveCount(50);
  expect(await rowIds(table)).toEqual(expected.slice(0, 50));
  await expect(table).toContainText("patient.read");
  await checkBothSizes(page, "07-audit-search");

  const pages = page.getByRole("navigation", { name: "Audit events pages" });
  await pages.getByRole("button", { name: "Next page" }).click();
  await expect(page.getByTestId("page-number")).toHaveText("Page 2");
  await expect(table.locator("tbody tr")).toHaveCount(expected.length - 50);
  expect(await rowIds(table)).toEqual(expected.slice(50));
  await expect(pages.getByRole("button", { name: "Next page" })).toBeDisabled();
  await pages.getByRole("button", { name: "Previous page" }).click();
  await expect(page.getByTestId("page-number")).toHaveText("Page 1");
  expect(await rowIds(table)).toEqual(expected.slice(0, 50));

  // A filter nothing matches shows the empty state, not an empty table.
  await page.getByLabel("Outcome").selectOption("error");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await expect(page.getByText("No audit events match these filters.")).toBeVisible();
  // A range that ends before it starts is refused next to the field, without a request.
  await page
    .getByLabel("To (exclusive)")
    .fill(localInput(new Date(start.getTime() - 3_600_000), clinic.timeZone));
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await expect(page.getByText("Must be after the start")).toBeVisible();
});

test("the accounting of disclosures lists who accessed one patient's record, allowed and denied", async ({
  page,
  context,
}) => {
  // One allowed read (front desk) and one refused read (a clinician without a care relationship).
  const found = { id: await unrelatedPatient() };
  const staff = await apiAs("staff");
  const chart = await staff.patients.get.query({ patientId: found.id });
  const mrn = chart.demographics.mrn;
  if (!mrn) throw new Error("the unrelated patient has no MRN");
  const clinician = await apiAs("clinician");
  await expect(clinician.patients.get.query({ patientId: found.id })).rejects.toMatchObject({
    data: { code: "FORBIDDEN" },
  });

  await signInAs(context, "admin");
  await page.goto("/admin/audit?tab=patient");
  await expect(page.getByRole("heading", { name: "Accounting of disclosures" })).toBeVisible();
  await checkBothSizes(page, "07-audit-disclosures-pick");
  const panel = page.getByRole("tabpanel");
  await panel.getByRole("textbox", { name: "MRN" }).fill(mrn);
  await panel.getByRole("button", { name: "Search" }).click();
  await panel.getByRole("button", { name: /Choose/ }).click();
  const table = page.getByTestId("disclosures");
  await expect(table).toBeVisible();
  await expect(
    table.locator("tbody tr", { hasText: "patient.read" }).filter({ hasText: "denied" }).first(),
  ).toContainText("(clinician)");
  await expect(
    table.locator("tbody tr", { hasText: "patient.read" }).filter({ hasText: "allowed" }).first(),
  ).toContainText("(staff)");
  const shown = await rowIds(table);
  const db = (
    await query<{ id: string }>(
      `SELECT id FROM audit_events WHERE patient_id = $1 ORDER BY occurred_at DESC, id DESC`,
      [found.id],
    )
  ).map((r) => r.id);
  // The page is the newest window of the patient's events (the screen's own audit.for_patient
  // read may be recorded just after the rows were selected).
  const offset = db.indexOf(shown[0] ?? "");
  expect(offset).toBeGreaterThanOrEqual(0);
  expect(offset).toBeLessThanOrEqual(1);
  expect(shown).toEqual(db.slice(offset, offset + shown.length));
  expect(shown.length).toBe(Math.min(50, db.length - offset));
  await checkBothSizes(page, "07-audit-disclosures");
});

/** `access.breakGlass` with a fresh TOTP code; a code already used in this window waits for the next. */
async function breakGlass(patientId: string, reason: string) {
  const clinician = await apiAs("clinician");
  const totp = new TOTP({ secret: state().totp.clinician ?? "" });
  for (let attempt = 0; ; attempt++) {
    try {
      return await clinician.access.breakGlass.mutate({ patientId, reason, code: totp.generate() });
    } catch (err) {
      const reason = (err as { data?: { reason?: string } }).data?.reason;
      if (reason !== "mfa_code_reused" || attempt >= 2) throw err;
      await new Promise((r) => setTimeout(r, 31_000 - (Date.now() % 30_000)));
    }
  }
}

test("an admin reviews a clinician's emergency access from the break-the-glass queue", async ({
  page,
  context,
}) => {
  const unrelated = { id: await unrelatedPatient() };
  const reason = `Unconscious patient in the ER, record needed now (e2e ${Date.now()})`;
  const grant = await breakGlass(unrelated.id, reason);

  await signInAs(context, "admin");
  await page.goto("/admin/audit?tab=break-glass");
  await expect(page.getByRole("heading", { name: "Break-the-glass review" })).toBeVisible();
  const card = page.getByRole("listitem").filter({ hasText: reason });
  await expect(card).toBeVisible();
  await expect(card).toContainText("Active");
  await checkBothSizes(page, "07-audit-break-glass");
  await card.getByRole("radio", { name: "Appropriate", exact: true }).check();
  await card.getByLabel("Review note (optional)").fill("Confirmed with the ER charge nurse");
  await card.getByRole("button", { name: "Record the review" }).click();
  await expect(page.getByRole("listitem").filter({ hasText: reason })).toHaveCount(0);
  const [row] = await query<{ review_outcome: string | null; reviewed_at: Date | null }>(
    `SELECT review_outcome, reviewed_at FROM break_glass_grants WHERE id = $1`,
    [grant.grantId],
  );
  expect(row?.review_outcome).toBe("appropriate");
  expect(row?.reviewed_at).not.toBeNull();
  await page.getByLabel("Show").selectOption("reviewed");
  const reviewed = page.getByRole("listitem").filter({ hasText: reason });
  await expect(reviewed).toContainText("Appropriate");
  await expect(reviewed).toContainText("Confirmed with the ER charge nurse");
  // The review note typed by the admin is not left behind in the tab after submitting.
  expect(
    await page.evaluate(() =>
      Object.keys(sessionStorage).filter((k) => k.startsWith("haven.draft.")),
    ),
  ).toEqual([]);
});

test("the audit screen is the admins': staff and clinicians get neither the link nor the page", async ({
  browser,
}) => {
  for (const role of ["staff", "clinician"] as const) {
    const ctx = await browser.newContext();
    await signInAs(ctx, role);
    const page = await ctx.newPage();
    await page.goto("/admin/audit?tab=verify");
    await expect(page.getByRole("heading", { name: "Schedule" })).toBeVisible();
    await expect(page).toHaveURL(/\/admin\/schedule/);
    const nav = page.getByRole("navigation", { name: "Main" });
    await expect(nav.getByRole("link", { name: "Audit" })).toHaveCount(0);
    await expect(nav.getByRole("link", { name: "Reminders" })).toHaveCount(
      role === "staff" ? 1 : 0,
    );
    await ctx.close();
  }
});
