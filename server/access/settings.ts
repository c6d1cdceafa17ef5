import type { AppConfig } from "../config.ts";

/** Configured privacy rules the access and audit procedures need. */
export interface PrivacySettings {
  /** Lifetime of a break-the-glass grant, minutes. */
  breakGlassMinutes: number;
}

/** Defaults (the config defaults): a grant lasts 60 minutes. */
export const DEFAULT_PRIVACY_SETTINGS: PrivacySettings = Object.freeze({ breakGlassMinutes: 60 });

/** Privacy settings from validated configuration. */
export function privacySettingsFrom(config: AppConfig): PrivacySettings {
  return { breakGlassMinutes: config.HAVEN_BREAK_GLASS_MINUTES };
}
