/**
 * Map a mail transport failure to a queue outcome and a short, PHI-free code. SMTP replies quote
 * addresses ("550 5.1.1 <jane@…>: user unknown"), so only the reply code and the enhanced status
 * code (RFC 3463) leave this function, never the text.
 *
 * - 4xx replies (RFC 5321 §4.2.1 transient), connection, DNS, TLS and timeout errors → `retry`.
 * - 5xx replies → `retry` as well: the server's attempt budget and exponential backoff turn a
 *   permanent rejection into a dead letter after `HAVEN_REMINDER_MAX_ATTEMPTS`, which also rides
 *   out relay misconfiguration (auth, relay denied) that an operator fixes (ADR 0004).
 * - An envelope the transport refuses before talking to any server (malformed address) → `failed`
 *   at once: no retry can succeed until staff fix the record.
 */
export interface Classified {
  outcome: "retry" | "failed";
  /** e.g. `smtp_451_4.3.0`, `smtp_550`, `econnrefused`, `invalid_address`. */
  code: string;
}

export function classifySendError(err: unknown): Classified {
  const e = (err ?? {}) as { responseCode?: unknown; response?: unknown; code?: unknown };
  const reply = typeof e.responseCode === "number" ? e.responseCode : null;
  if (reply !== null && reply >= 400 && reply <= 599) {
    const enhanced =
      typeof e.response === "string"
        ? /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(e.response)
        : null;
    return { outcome: "retry", code: `smtp_${reply}${enhanced ? `_${enhanced[1]}` : ""}` };
  }
  const code = typeof e.code === "string" ? e.code.toLowerCase() : "";
  if (code === "eenvelope") return { outcome: "failed", code: "invalid_address" };
  if (/^[a-z0-9_]{1,40}$/.test(code)) return { outcome: "retry", code };
  return { outcome: "retry", code: "send_error" };
}
