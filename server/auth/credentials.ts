import type { ServiceDeps } from "../deps.ts";
import type { Actor } from "../kernel/roles.ts";
import { isApiKey, resolveApiKey } from "./api-key-credential.ts";
import type { SessionManager } from "./session.ts";

/** How a request proved who it is. */
export type CredentialKind = "session-bearer" | "session-cookie" | "api-key";

export interface Authenticated {
  actor: Actor;
  via: CredentialKind;
  mfaVerified: boolean;
  mfaEnrolled: boolean;
  /** Re-set the session cookie (raw token) because activity slid the idle window. */
  refreshCookie: boolean;
}

/**
 * Resolve a request's credential: `Authorization: Bearer <session token | hk_… API key>` or the
 * session cookie. When an Authorization header is present it is the only credential considered
 * (a bad bearer never falls back to the cookie, so the CSRF exemption for bearer calls cannot be
 * borrowed by a cookie). @returns null when anonymous or the credential is not (or no longer) valid
 */
export async function authenticate(
  services: { deps: ServiceDeps; sessions: SessionManager },
  headers: { authorization?: string | undefined; cookie?: string | undefined },
): Promise<Authenticated | null> {
  if (headers.authorization !== undefined) {
    const bearer = services.sessions.readBearer(headers.authorization);
    if (!bearer) return null;
    if (isApiKey(bearer)) {
      const actor = await resolveApiKey(services.deps, bearer);
      return actor
        ? { actor, via: "api-key", mfaVerified: false, mfaEnrolled: false, refreshCookie: false }
        : null;
    }
    const v = await services.sessions.validate(bearer);
    return v
      ? {
          actor: v.actor,
          via: "session-bearer",
          mfaVerified: v.mfaVerified,
          mfaEnrolled: v.mfaEnrolled,
          refreshCookie: false,
        }
      : null;
  }
  if (!headers.cookie) return null;
  const v = await services.sessions.validate(headers.cookie);
  return v
    ? {
        actor: v.actor,
        via: "session-cookie",
        mfaVerified: v.mfaVerified,
        mfaEnrolled: v.mfaEnrolled,
        refreshCookie: v.refreshed,
      }
    : null;
}
