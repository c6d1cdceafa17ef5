import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, type Harness } from "../test/harness.ts";
import { type Clinic, makeClinic, setHours } from "./fixtures.ts";

/**
 * DST end to end: clinics in America/New_York, Europe/Berlin and Australia/Lord_Howe, open every
 * day 09:00–10:00 (30-minute slots), asked for slots across both 2027 transitions through
 * `appointments.slots`; a booking on a transition day lands at 09:00 local and is listed on that
 * local day by `appointments.day`. Expected UTC instants are written out by hand from the rules.
 */
let h: Harness;
const clinics: Record<string, Clinic> = {};
const ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe"] as const;

beforeAll(async () => {
  h = await createHarness();
  h.clock.now = new Date("2027-01-01T00:00:00Z");
  for (const zone of ZONES) {
    const c = await makeClinic(h, zone);
    await setHours(
      h,
      c.organizationId,
      c.practitionerId,
      [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({
        weekday,
        start: "09:00",
        end: "10:00",
        slotMinutes: 30,
      })),
    );
    clinics[zone] = c;
  }
});
afterAll(async () => {
  await h?.close();
});

const cases: [string, string, string, string[]][] = [
  // zone, from, to, expected UTC instants of the 09:00 slots on the day before, of and after
  [
    "America/New_York",
    "2027-03-13T05:00Z",
    "2027-03-16T04:00Z",
    ["2027-03-13T14:00", "2027-03-14T13:00", "2027-03-15T13:00"],
  ],
  [
    "America/New_York",
    "2027-11-06T04:00Z",
    "2027-11-09T05:00Z",
    ["2027-11-06T13:00", "2027-11-07T14:00", "2027-11-08T14:00"],
  ],
  [
    "Europe/Berlin",
    "2027-03-26T23:00Z",
    "2027-03-29T22:00Z",
    ["2027-03-27T08:00", "2027-03-28T07:00", "2027-03-29T07:00"],
  ],
  [
    "Europe/Berlin",
    "2027-10-29T22:00Z",
    "2027-11-01T23:00Z",
    ["2027-10-30T07:00", "2027-10-31T08:00", "2027-11-01T08:00"],
  ],
  [
    "Australia/Lord_Howe",
    "2027-04-02T13:00Z",
    "2027-04-05T13:30Z",
    ["2027-04-02T22:00", "2027-04-03T22:30", "2027-04-04T22:30"],
  ],
  [
    "Australia/Lord_Howe",
    "2027-10-01T13:30Z",
    "2027-10-04T13:00Z",
    ["2027-10-01T22:30", "2027-10-02T22:00", "2027-10-03T22:00"],
  ],
];

describe("appointments.slots across the 2027 transitions", () => {
  it.each(cases)("%s from %s", async (zone, from, to, nines) => {
    const c = clinics[zone] as Clinic;
    const { slots, timeZone } = await h.caller(c.patient.actor).appointments.slots({
      practitionerId: c.practitionerId,
      from: new Date(from),
      to: new Date(to),
    });
    expect(timeZone).toBe(zone);
    expect(slots.map((s) => s.local.slice(11, 16))).toEqual([
      "09:00",
      "09:30",
      "09:00",
      "09:30",
      "09:00",
      "09:30",
    ]);
    expect(
      slots.filter((_, i) => i % 2 === 0).map((s) => s.startsAt.toISOString().slice(0, 16)),
    ).toEqual(nines);
    for (const s of slots) expect(s.endsAt.getTime() - s.startsAt.getTime()).toBe(30 * 60_000);
  });
});

describe("a booking on the transition day", () => {
  it.each([
    ["America/New_York", "2027-11-07", "2027-11-07T14:00:00Z"],
    ["Europe/Berlin", "2027-03-28", "2027-03-28T07:00:00Z"],
    ["Australia/Lord_Howe", "2027-10-03", "2027-10-02T22:00:00Z"],
  ])("%s %s: 09:00 local is booked and listed on that local day", async (zone, date, nineUtc) => {
    const c = clinics[zone] as Clinic;
    const visit = await h.caller(c.patient.actor).appointments.book({
      practitionerId: c.practitionerId,
      startsAt: new Date(nineUtc),
    });
    const day = await h
      .caller(c.staff.actor)
      .appointments.day({ organizationId: c.organizationId, date });
    expect(day.items.map((i) => i.id)).toEqual([visit.id]);
    const before = new Date(new Date(nineUtc).getTime() - 86_400_000).toISOString().slice(0, 10);
    const neighbour = await h.caller(c.staff.actor).appointments.day({
      organizationId: c.organizationId,
      date: zone === "Australia/Lord_Howe" ? "2027-10-02" : before,
    });
    expect(neighbour.items).toEqual([]);
  });
});
