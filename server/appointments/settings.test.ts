import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../config.ts";
import { DEFAULT_SCHEDULING_SETTINGS, schedulingSettingsFrom } from "./settings.ts";

/** The appointment settings come from validated configuration, with named errors. */
describe("scheduling settings from the environment", () => {
  it("defaults: reminders 24 h and 2 h before by e-mail, patients change up to 24 h before", () => {
    const s = schedulingSettingsFrom(loadConfig({}));
    expect(s).toEqual(DEFAULT_SCHEDULING_SETTINGS);
    expect(s.reminderOffsetsMinutes).toEqual([1440, 120]);
  });

  it("parses offsets in minutes, hours and days, de-duplicated and largest first", () => {
    const s = schedulingSettingsFrom(
      loadConfig({
        HAVEN_REMINDER_OFFSETS: "90m, 2d,1440m,24h",
        HAVEN_REMINDER_CHANNELS: "email,sms,email",
        HAVEN_PATIENT_CANCEL_CUTOFF_HOURS: "2.5",
      }),
    );
    expect(s.reminderOffsetsMinutes).toEqual([2880, 1440, 90]);
    expect(s.reminderChannels).toEqual(["email", "sms"]);
    expect(s.patientCancelCutoffMinutes).toBe(150);
  });

  it.each([
    ["HAVEN_REMINDER_OFFSETS", "24"],
    ["HAVEN_REMINDER_OFFSETS", "0h"],
    ["HAVEN_REMINDER_OFFSETS", "31d"],
    ["HAVEN_REMINDER_OFFSETS", "1h,2h,3h,4h,5h,6h"],
    ["HAVEN_REMINDER_CHANNELS", "pager"],
    ["HAVEN_REMINDER_CHANNELS", ","],
    ["HAVEN_PATIENT_CANCEL_CUTOFF_HOURS", "-1"],
  ])("refuses %s=%s and names it", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });
});
