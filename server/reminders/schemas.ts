import { z } from "zod";

export const reminderStatus = z.enum(["pending", "claimed", "sent", "failed", "cancelled"]);
export const reminderChannel = z.enum(["email", "sms"]);

/**
 * A short machine code (`smtp_451`, `smtp_550_5.1.1`, `econnrefused`), never free text: SMTP
 * replies quote addresses, so a worker may only report codes (no PHI in `last_error`).
 */
const errorCode = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.:-]{0,63}$/, "must be a short lower-case code (a-z 0-9 _ . : -)");

export const claimDueInput = z.strictObject({
  /** Most reminders to claim in this call, 1–500. */
  limit: z.number().int().min(1).max(500),
  /** How long the claim holds, seconds (1 s – 1 h); an unfinished claim is reclaimable after it. */
  leaseSeconds: z.number().int().min(1).max(3_600),
  /** Channels this worker can deliver (default e-mail only). */
  channels: z.array(reminderChannel).min(1).max(2).default(["email"]),
});

/** One claimed reminder: the minimum needed to write it (45 CFR 164.502(b)). */
export const claimedReminder = z.object({
  id: z.uuid(),
  /** Claim token: report it back to `complete`; a newer claim or a rescheduling invalidates it. */
  version: z.number().int(),
  /** This claim's attempt number (1 = first). */
  attempt: z.number().int().min(1),
  channel: reminderChannel,
  recipient: z.object({
    /** First given name, or null when the record has none. */
    firstName: z.string().nullable(),
    /** E-mail address (channel `email`) or phone number (channel `sms`). */
    address: z.string(),
  }),
  appointment: z.object({
    /** UTC instant. */
    startsAt: z.date(),
    /** Local wall time and offset in the clinic's zone, e.g. `2027-03-15T09:00-04:00`. */
    localStart: z.string(),
  }),
  clinic: z.object({ name: z.string(), timezone: z.string() }),
});

export const claimDueOutput = z.object({
  reminders: z.array(claimedReminder),
  /** Due reminders found moot or undeliverable in this call (cancelled or failed, never sent). */
  skipped: z.number().int().min(0),
  /** The lease granted, seconds (equal to the request). */
  leaseSeconds: z.number().int(),
});

export const completeInput = z
  .strictObject({
    id: z.uuid(),
    /** The `version` returned by `claimDue` for this claim. */
    version: z.number().int().min(1),
    outcome: z.enum(["sent", "retry", "failed", "released"]),
    /** The transport's message id (outcome `sent`). */
    providerMessageId: z.string().min(1).max(300).optional(),
    /** Short failure code (outcomes `retry`, `failed`). */
    error: errorCode.optional(),
  })
  .superRefine((v, ctx) => {
    if ((v.outcome === "retry" || v.outcome === "failed") && !v.error) {
      ctx.addIssue({ code: "custom", path: ["error"], message: "required for retry and failed" });
    }
    if (v.outcome !== "sent" && v.providerMessageId !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["providerMessageId"],
        message: "only for outcome sent",
      });
    }
  });

export const completeOutput = z.object({
  id: z.uuid(),
  status: reminderStatus,
  attempts: z.number().int(),
  /** When it may be claimed again (status `pending`), UTC; else null. */
  nextAttemptAt: z.date().nullable(),
});

/** Most reports one `completeMany` call takes (the largest claim, `claimDue.limit` ≤ 500). */
export const COMPLETE_MANY_MAX = 500;

export const completeManyInput = z
  .strictObject({
    /** 1–500 reports, each exactly what `complete` takes; every `id` at most once. */
    items: z.array(completeInput).min(1).max(COMPLETE_MANY_MAX),
  })
  .superRefine((v, ctx) => {
    const seen = new Set<string>();
    v.items.forEach((item, i) => {
      if (seen.has(item.id)) {
        ctx.addIssue({
          code: "custom",
          path: ["items", i, "id"],
          message: "each reminder at most once per call",
        });
      }
      seen.add(item.id);
    });
  });

/** One report's result, in input order: applied, or refused exactly as `complete` would refuse it. */
export const completeManyResult = z.discriminatedUnion("ok", [
  completeOutput.extend({ ok: z.literal(true) }),
  z.object({
    ok: z.literal(false),
    id: z.uuid(),
    /** The tRPC code `complete` would have thrown for this report. */
    code: z.enum(["CONFLICT", "NOT_FOUND"]),
    /** `stale_claim` (CONFLICT) or `not_found` (NOT_FOUND). */
    reason: z.enum(["stale_claim", "not_found"]),
  }),
]);

export const completeManyOutput = z.object({ results: z.array(completeManyResult) });

export const statsInput = z.strictObject({}).optional();

export const statsOutput = z.object({
  byStatus: z.object({
    pending: z.number().int(),
    claimed: z.number().int(),
    sent: z.number().int(),
    failed: z.number().int(),
    cancelled: z.number().int(),
  }),
  /** Pending reminders whose time has come (queue depth). */
  due: z.number().int(),
  /** Claims whose lease ran out (a worker died; the next claim picks them up). */
  expiredLeases: z.number().int(),
  /** The oldest due pending reminder's `next_attempt_at` (how far behind the cron is), UTC. */
  oldestDueAt: z.date().nullable(),
});

export const listInput = z.strictObject({
  status: reminderStatus.optional(),
  /** Page size, 1–100 (default 50). */
  limit: z.number().int().min(1).max(100).default(50),
  /** Opaque cursor from a previous page's `nextCursor`. */
  cursor: z.string().max(200).optional(),
});

/** A reminder as staff see it: ids, times, counters and codes; no name, address or content. */
export const reminderListItem = z.object({
  id: z.uuid(),
  appointmentId: z.uuid(),
  patientId: z.uuid(),
  channel: reminderChannel,
  offsetMinutes: z.number().int(),
  dueAt: z.date(),
  status: reminderStatus,
  attempts: z.number().int(),
  nextAttemptAt: z.date(),
  lastError: z.string().nullable(),
  sentAt: z.date().nullable(),
  updatedAt: z.date(),
});

export const listOutput = z.object({
  items: z.array(reminderListItem),
  nextCursor: z.string().nullable(),
});

export const retryInput = z.strictObject({ id: z.uuid() });
export const retryOutput = reminderListItem;
