import { describe, expect, it } from "vitest";
import {
  computeSlots,
  type DayException,
  localDateOf,
  localDayBounds,
  parseLocalTime,
  type SlotQuery,
  type WeeklyWindow,
} from "./slots.ts";

/**
 * The slot engine across the 2027 DST transitions of America/New_York, Europe/Berlin and
 * Australia/Lord_Howe (a 30-minute shift). Expected instants are written out by hand from the
 * zone rules, not computed with the code under test.
 */
const everyDay = (start: string, end: string, slotMinutes: number): WeeklyWindow[] =>
  [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({
    weekday,
    start: parseLocalTime(start),
    end: parseLocalTime(end),
    slotMinutes,
  }));

function slots(q: Partial<SlotQuery> & Pick<SlotQuery, "timeZone" | "from" | "to">) {
  return computeSlots({ weekly: [], exceptions: [], busy: [], ...q });
}
const iso = (d: Date) => d.toISOString().replace(":00.000Z", "Z");

describe("a 09:00 slot stays 09:00 local on both sides of each 2027 change", () => {
  const cases: [string, string, string, string[]][] = [
    // zone, from, to, expected UTC starts of the first slot of each local day
    [
      "America/New_York",
      "2027-03-13T00:00:00Z",
      "2027-03-16T03:00:00Z",
      ["2027-03-13T14:00Z", "2027-03-14T13:00Z", "2027-03-15T13:00Z"],
    ],
    [
      "America/New_York",
      "2027-11-06T00:00:00Z",
      "2027-11-09T03:00:00Z",
      ["2027-11-06T13:00Z", "2027-11-07T14:00Z", "2027-11-08T14:00Z"],
    ],
    [
      "Europe/Berlin",
      "2027-03-27T00:00:00Z",
      "2027-03-29T20:00:00Z",
      ["2027-03-27T08:00Z", "2027-03-28T07:00Z", "2027-03-29T07:00Z"],
    ],
    [
      "Europe/Berlin",
      "2027-10-30T00:00:00Z",
      "2027-11-01T20:00:00Z",
      ["2027-10-30T07:00Z", "2027-10-31T08:00Z", "2027-11-01T08:00Z"],
    ],
    [
      // DST ends 2027-04-04 02:00 +11:00 → 01:30 +10:30
      "Australia/Lord_Howe",
      "2027-04-02T12:00:00Z",
      "2027-04-05T12:00:00Z",
      ["2027-04-02T22:00Z", "2027-04-03T22:30Z", "2027-04-04T22:30Z"],
    ],
    [
      // DST starts 2027-10-03 02:00 +10:30 → 02:30 +11:00
      "Australia/Lord_Howe",
      "2027-10-01T12:00:00Z",
      "2027-10-04T12:00:00Z",
      ["2027-10-01T22:30Z", "2027-10-02T22:00Z", "2027-10-03T22:00Z"],
    ],
  ];
  it.each(cases)("%s %s", (timeZone, from, to, expected) => {
    const found = slots({
      timeZone,
      weekly: everyDay("09:00", "10:00", 30),
      from: new Date(from),
      to: new Date(to),
    });
    const nine = found.filter((s) => s.local.slice(11, 16) === "09:00");
    expect(nine.map((s) => iso(s.startsAt))).toEqual(expected);
    expect(found.map((s) => s.local.slice(11, 16))).toEqual(
      expected.flatMap(() => ["09:00", "09:30"]),
    );
    for (const s of found) expect(s.endsAt.getTime() - s.startsAt.getTime()).toBe(30 * 60_000);
  });
});

describe("skipped and repeated hours (a clinic open through the night)", () => {
  const night = (timeZone: string, date: string, start: string, end: string, minutes: number) => {
    const day = localDayBounds(date, timeZone);
    return slots({
      timeZone,
      weekly: everyDay(start, end, minutes),
      from: day.startsAt,
      to: day.endsAt,
    });
  };
  const assertNoOverlapAndLength = (
    found: ReturnType<typeof slots>,
    minutes: number,
  ): undefined => {
    for (const [i, s] of found.entries()) {
      expect(s.endsAt.getTime() - s.startsAt.getTime()).toBe(minutes * 60_000);
      const next = found[i + 1];
      if (next) expect(next.startsAt.getTime()).toBeGreaterThanOrEqual(s.endsAt.getTime());
    }
  };

  it("New York spring forward: 02:00 and 02:30 do not exist and yield no slot", () => {
    const found = night("America/New_York", "2027-03-14", "00:00", "04:00", 30);
    expect(found.map((s) => s.local.slice(11))).toEqual([
      "00:00-05:00",
      "00:30-05:00",
      "01:00-05:00",
      "01:30-05:00",
      "03:00-04:00",
      "03:30-04:00",
    ]);
    expect(iso(found[3]?.endsAt as Date)).toBe("2027-03-14T07:00Z");
    expect(iso(found[4]?.startsAt as Date)).toBe("2027-03-14T07:00Z");
    assertNoOverlapAndLength(found, 30);
  });

  it("New York fall back: 01:00 and 01:30 occur twice and each occurrence is a slot", () => {
    const found = night("America/New_York", "2027-11-07", "00:00", "04:00", 30);
    expect(found.map((s) => s.local.slice(11))).toEqual([
      "00:00-04:00",
      "00:30-04:00",
      "01:00-04:00",
      "01:30-04:00",
      "01:00-05:00",
      "01:30-05:00",
      "02:00-05:00",
      "02:30-05:00",
      "03:00-05:00",
      "03:30-05:00",
    ]);
    expect(found.map((s) => iso(s.startsAt)).slice(2, 6)).toEqual([
      "2027-11-07T05:00Z",
      "2027-11-07T05:30Z",
      "2027-11-07T06:00Z",
      "2027-11-07T06:30Z",
    ]);
    assertNoOverlapAndLength(found, 30);
  });

  it("Berlin spring forward (02:00 → 03:00) and fall back (03:00 → 02:00), hourly slots", () => {
    const spring = night("Europe/Berlin", "2027-03-28", "01:00", "05:00", 60);
    expect(spring.map((s) => s.local.slice(11))).toEqual([
      "01:00+01:00",
      "03:00+02:00",
      "04:00+02:00",
    ]);
    expect(spring.map((s) => iso(s.startsAt))).toEqual([
      "2027-03-28T00:00Z",
      "2027-03-28T01:00Z",
      "2027-03-28T02:00Z",
    ]);
    const fall = night("Europe/Berlin", "2027-10-31", "01:00", "05:00", 60);
    expect(fall.map((s) => s.local.slice(11))).toEqual([
      "01:00+02:00",
      "02:00+02:00",
      "02:00+01:00",
      "03:00+01:00",
      "04:00+01:00",
    ]);
    assertNoOverlapAndLength(fall, 60);
  });

  it("Lord Howe fall back by 30 minutes: 01:30 occurs at +11:00 and again at +10:30", () => {
    const found = night("Australia/Lord_Howe", "2027-04-04", "00:00", "04:00", 30);
    expect(found.map((s) => s.local.slice(11))).toEqual([
      "00:00+11:00",
      "00:30+11:00",
      "01:00+11:00",
      "01:30+11:00",
      "01:30+10:30",
      "02:00+10:30",
      "02:30+10:30",
      "03:00+10:30",
      "03:30+10:30",
    ]);
    expect(iso(found[3]?.startsAt as Date)).toBe("2027-04-03T14:30Z");
    expect(iso(found[4]?.startsAt as Date)).toBe("2027-04-03T15:00Z");
    assertNoOverlapAndLength(found, 30);
  });

  it("Lord Howe spring forward by 30 minutes: 02:00 and 02:20 vanish from a 20-minute grid", () => {
    const found = night("Australia/Lord_Howe", "2027-10-03", "00:00", "04:00", 20);
    expect(found.map((s) => s.local.slice(11, 16))).toEqual([
      "00:00",
      "00:20",
      "00:40",
      "01:00",
      "01:20",
      "01:40",
      "02:40",
      "03:00",
      "03:20",
      "03:40",
    ]);
    // 01:40 +10:30 ends at the transition (15:30Z); 02:40 +11:00 starts 10 minutes later.
    expect(iso(found[5]?.endsAt as Date)).toBe("2027-10-02T15:30Z");
    expect(iso(found[6]?.startsAt as Date)).toBe("2027-10-02T15:40Z");
    assertNoOverlapAndLength(found, 20);
  });

  it("a window boundary inside the skipped hour is the transition instant", () => {
    const endsInGap = night("America/New_York", "2027-03-14", "00:00", "02:30", 30);
    expect(endsInGap.map((s) => s.local.slice(11, 16))).toEqual([
      "00:00",
      "00:30",
      "01:00",
      "01:30",
    ]);
    const startsInGap = night("America/New_York", "2027-03-14", "02:30", "05:00", 30);
    expect(startsInGap.map((s) => s.local.slice(11, 16))).toEqual([
      "03:00",
      "03:30",
      "04:00",
      "04:30",
    ]);
  });

  it("a slot running across the gap drops the grid slot it would overlap (rule 5)", () => {
    const found = night("America/New_York", "2027-03-14", "00:00", "05:00", 90);
    // 01:30 EST + 90 real minutes = 04:00 EDT, so the 03:00 EDT grid slot would overlap it.
    expect(found.map((s) => s.local.slice(11))).toEqual(["00:00-05:00", "01:30-05:00"]);
    assertNoOverlapAndLength(found, 90);
  });
});

describe("exceptions, busy time and bounds", () => {
  const zone = "Europe/Berlin";
  const monday = "2027-06-07";
  const day = localDayBounds(monday, zone);
  const weekly: WeeklyWindow[] = [
    { weekday: 1, start: parseLocalTime("09:00"), end: parseLocalTime("12:00"), slotMinutes: 60 },
  ];
  const times = (found: ReturnType<typeof slots>) => found.map((s) => s.local.slice(11, 16));

  it("applies weekly hours on the right weekday only", () => {
    expect(times(slots({ timeZone: zone, weekly, from: day.startsAt, to: day.endsAt }))).toEqual([
      "09:00",
      "10:00",
      "11:00",
    ]);
    const tuesday = localDayBounds("2027-06-08", zone);
    expect(slots({ timeZone: zone, weekly, from: tuesday.startsAt, to: tuesday.endsAt })).toEqual(
      [],
    );
  });

  it("a whole-day closure removes every slot; a partial one only the slots it overlaps", () => {
    const closed: DayException[] = [{ date: monday, kind: "closed", start: null, end: null }];
    expect(
      slots({ timeZone: zone, weekly, exceptions: closed, from: day.startsAt, to: day.endsAt }),
    ).toEqual([]);
    const partial: DayException[] = [
      {
        date: monday,
        kind: "closed",
        start: parseLocalTime("10:30"),
        end: parseLocalTime("11:00"),
      },
    ];
    expect(
      times(
        slots({ timeZone: zone, weekly, exceptions: partial, from: day.startsAt, to: day.endsAt }),
      ),
    ).toEqual(["09:00", "11:00"]);
  });

  it("extra hours add slots with their own length", () => {
    const extra: DayException[] = [
      {
        date: monday,
        kind: "extra",
        start: parseLocalTime("14:00"),
        end: parseLocalTime("15:00"),
        slotMinutes: 20,
      },
    ];
    expect(
      times(
        slots({ timeZone: zone, weekly, exceptions: extra, from: day.startsAt, to: day.endsAt }),
      ),
    ).toEqual(["09:00", "10:00", "11:00", "14:00", "14:20", "14:40"]);
  });

  it("leaves out slots overlapping busy time and slots before notBefore, and honours [from, to)", () => {
    const nine = new Date("2027-06-07T07:00:00Z");
    const found = slots({
      timeZone: zone,
      weekly,
      busy: [
        { startsAt: new Date("2027-06-07T08:30:00Z"), endsAt: new Date("2027-06-07T08:45:00Z") },
      ],
      from: nine,
      to: new Date("2027-06-07T09:00:00Z"),
    });
    expect(times(found)).toEqual(["09:00"]);
    expect(
      times(
        slots({
          timeZone: zone,
          weekly,
          from: day.startsAt,
          to: day.endsAt,
          notBefore: new Date("2027-06-07T07:00:01Z"),
        }),
      ),
    ).toEqual(["10:00", "11:00"]);
  });

  it("local day bounds handle 23- and 25-hour days", () => {
    const short = localDayBounds("2027-03-28", zone);
    expect(short.endsAt.getTime() - short.startsAt.getTime()).toBe(23 * 3_600_000);
    const long = localDayBounds("2027-10-31", zone);
    expect(long.endsAt.getTime() - long.startsAt.getTime()).toBe(25 * 3_600_000);
    expect(localDateOf(new Date("2027-10-31T22:59:00Z"), zone)).toBe("2027-10-31");
    expect(localDateOf(new Date("2027-10-31T23:00:00Z"), zone)).toBe("2027-11-01");
  });

  it("parses local times strictly", () => {
    expect(parseLocalTime("09:30")).toBe(570);
    expect(parseLocalTime("09:30:00")).toBe(570);
    expect(parseLocalTime("24:00")).toBe(1440);
    for (const bad of ["9:30", "24:01", "12:60", "noon"]) {
      expect(() => parseLocalTime(bad)).toThrow(RangeError);
    }
  });
});
