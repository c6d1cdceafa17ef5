import { randomBytes, randomInt } from "node:crypto";
import { and, asc, desc, eq, gt, inArray, isNull, lt, ne } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { invitations, patients, practitioners, users } from "../../db/schema/index.ts";
import type { MailTransport } from "../../lib/mail.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import type { LoginRequest, LoginResult } from "../auth/login.ts";
import type { SessionIo } from "../auth/own-sessions.ts";
import { assertPasswordAcceptable, hashPassword } from "../auth/password-hashing.ts";
import type { SessionManager } from "../auth/session.ts";
import { keysFor, reserve } from "../auth/throttle.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, auditDenial, recordAudit } from "../kernel/audit.ts";
import { decodeOptionalCursor, encodeCursor } from "../kernel/cursor.ts";
import type { Demographics } from "../kernel/demographics.ts";
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  TooManyRequestsError,
  UnauthorizedError,
  ValidationError,
} from "../kernel/errors.ts";
import { sha256Hex as sha256 } from "../kernel/hash.ts";
import type { Actor, Role } from "../kernel/roles.ts";
import { clearMfa } from "../mfa/service.ts";
import {
  type AssignableRole,
  canAdministerAccount,
  canChangeRole,
  invitableRoles,
  type TargetAccount,
} from "./policy.ts";

/**
 * Account administration: invitations (portal patients, workforce), role changes, disabling,
 * MFA reset, the user list. Every change is audited; every refusal is a typed error.
 */

/** Invitations expire after this long by default (hours). */
export const INVITATION_TTL_HOURS = 72;
/** Wrong dates of birth before an invitation is burned. */
export const INVITATION_MAX_FAILURES = 5;
const INVALID_INVITATION = "This invitation is invalid or has expired";
/** Alphabet of the contact-on-file confirmation code (Crockford base32: no I, L, O, U). */
const CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** Length of the confirmation code: 8 × 5 = 40 bits, against at most 5 guesses per invitation. */
export const CONTACT_CODE_LENGTH = 8;

/** A fresh confirmation code for the contact on file (CSPRNG). */
function contactCode(): string {
  let code = "";
  for (let i = 0; i < CONTACT_CODE_LENGTH; i++)
    code += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
  return code;
}

/** `jane.doe@example.test` → `j•••@example.test`: enough for the owner to recognise, no more. */
function maskAddress(email: string): string {
  const at = email.lastIndexOf("@");
  if (at <= 0) return "•••";
  return `${email.slice(0, 1)}•••${email.slice(at)}`;
}

/** A rule violation on one input field: BAD_REQUEST with the path in `data.issues`. */
function invalidField(field: string, message: string): ValidationError {
  return Object.assign(new ValidationError(`Invalid input: ${field}: ${message}`), {
    issues: [{ path: [field], message }],
  });
}

async function loadTarget(db: Database, userId: string): Promise<TargetAccount | null> {
  const [u] = await db
    .select({ id: users.id, organizationId: users.organizationId, role: users.role })
    .from(users)
    .where(eq(users.id, userId))
    .limit(1);
  return u ?? null;
}

/**
 * Load the target account and apply {@link canAdministerAccount}. Another organization's account
 * is NOT_FOUND (its existence is not disclosed); a refusal is audited as denied.
 */
async function administrable(
  deps: ServiceDeps & { db: Database },
  actor: Actor,
  audit: AuditActor,
  userId: string,
  action: "auth.role_changed" | "auth.account_disabled" | "auth.account_enabled" | "auth.mfa_reset",
): Promise<TargetAccount> {
  const target = await loadTarget(deps.db, userId);
  const decision = target
    ? canAdministerAccount(actor, target)
    : ({ allowed: false, rule: "other_organization" } as const);
  if (!decision.allowed || !target) {
    throw await auditDenial(
      deps.db,
      audit,
      {
        action,
        resourceType: "User",
        resourceId: userId,
        details: { rule: decision.allowed ? "missing" : decision.rule },
      },
      !target || (!decision.allowed && decision.rule === "other_organization")
        ? new NotFoundError("No such account")
        : new ForbiddenError(
            !decision.allowed && decision.rule === "self"
              ? "You cannot do this to your own account"
              : "You may not administer this account",
            decision.allowed ? undefined : decision.rule,
          ),
      deps.now(),
    );
  }
  return target;
}

export interface CreateInvitationInput {
  role: Role;
  /** Portal invitations: the patient record the account will be linked to. */
  patientId?: string | undefined;
  /** Clinician invitations: the Practitioner the account will be linked to (optional). */
  practitionerId?: string | undefined;
  /** Where to send it; for a patient defaults to the e-mail on the record. */
  email?: string | undefined;
  expiresInHours?: number | undefined;
}

/**
 * Invite someone to create an account. Staff invite portal patients (tied to a patient record of
 * their organization); admins also invite clinicians, staff and admins. The token (256 random
 * bits) goes only into the e-mail, through the mail transport; only its SHA-256 is stored
 * (single use, expiring; ASVS 2.5.1, 2.3.1). Audited `auth.invitation_created` (with the patient id).
 *
 * Portal invitations and the insider (ADR 0008): no workforce member may end up holding a
 * patient's session. The patient record must have a contact e-mail on file (staff cannot change
 * it). When `email` names another address, the invitation still goes there, but a confirmation
 * code goes to the contact on file (with a notice that an invitation went elsewhere) and is
 * required to accept; the event is audited `auth.invitation_off_file` against the patient, so it
 * appears in the accounting of disclosures (45 CFR 164.528, 164.312(d)). Same rule for admins.
 * @returns the invitation id and expiry (never the token)
 * @throws ForbiddenError (role may not invite that role), NotFoundError (patient/practitioner not in
 *   the organization), ConflictError (patient already has an account, e-mail already registered),
 *   ValidationError (`patientId`: no contact e-mail on file; `email` missing for workforce)
 */
export async function createInvitation(
  deps: ServiceDeps & { db: Database },
  mail: MailTransport,
  actor: Actor,
  audit: AuditActor,
  input: CreateInvitationInput,
): Promise<{ invitationId: string; expiresAt: Date }> {
  const now = deps.now();
  if (!invitableRoles(actor.role).includes(input.role)) {
    throw await auditDenial(
      deps.db,
      audit,
      {
        action: "auth.invitation_created",
        resourceType: "Invitation",
        details: { role: input.role, rule: "role" },
      },
      new ForbiddenError(`Your role may not invite a ${input.role}`, "role"),
      now,
    );
  }
  let email = input.email?.trim() ?? null;
  let patientId: string | null = null;
  /** Portal invitations: the patient's own e-mail from the (encrypted) demographics. */
  let contactOnFile: string | null = null;
  let practitionerId: string | null = null;
  if (input.role === "patient") {
    if (!input.patientId) {
      throw invalidField("patientId", "required for a patient invitation");
    }
    const [p] = await deps.db
      .select({
        id: patients.id,
        organizationId: patients.organizationId,
        userId: patients.userId,
        demographics: patients.demographics,
      })
      .from(patients)
      .where(eq(patients.id, input.patientId))
      .limit(1);
    if (!p || p.organizationId !== actor.organizationId) throw new NotFoundError("No such patient");
    if (p.userId) throw new ConflictError("This patient already has a portal account");
    patientId = p.id;
    contactOnFile =
      deps.crypto.open<Demographics>("patients", "demographics", p.id, p.demographics).email ??
      null;
    if (!contactOnFile) {
      // Without a contact on file there is no channel the workforce does not control, so nothing
      // could prove the invitee is the patient (ADR 0008): enrol in person once the record has one.
      throw invalidField(
        "patientId",
        "the patient record has no contact e-mail on file; a portal invitation needs one",
      );
    }
    email ??= contactOnFile;
  } else {
    if (input.patientId) {
      throw invalidField("patientId", "only for role patient");
    }
    if (input.practitionerId) {
      if (input.role !== "clinician") {
        throw invalidField("practitionerId", "only for role clinician");
      }
      const [pr] = await deps.db
        .select({
          id: practitioners.id,
          orgId: practitioners.organizationId,
          userId: practitioners.userId,
        })
        .from(practitioners)
        .where(eq(practitioners.id, input.practitionerId))
        .limit(1);
      if (!pr || pr.orgId !== actor.organizationId) throw new NotFoundError("No such practitioner");
      if (pr.userId) throw new ConflictError("This practitioner already has an account");
      practitionerId = pr.id;
    }
  }
  if (!email) {
    throw invalidField("email", "required: the patient record has no e-mail");
  }
  const emailIndex = deps.crypto.index("user.email", email);
  const [taken] = await deps.db
    .select({ id: users.id })
    .from(users)
    .where(eq(users.emailIndex, emailIndex))
    .limit(1);
  if (taken) throw new ConflictError("An account with this email already exists");

  // An address other than the contact on file (ADR 0008): acceptance also needs a code that goes
  // only to the contact on file, which also learns that an invitation went elsewhere.
  const offFile =
    contactOnFile !== null &&
    deps.crypto.index("user.email", contactOnFile) !== deps.crypto.index("user.email", email);
  const code = offFile ? contactCode() : null;
  const id = uuidv7();
  const token = randomBytes(32).toString("base64url");
  const expiresAt = new Date(
    now.getTime() + (input.expiresInHours ?? INVITATION_TTL_HOURS) * 3_600_000,
  );
  await deps.db.transaction(async (tx) => {
    await tx.insert(invitations).values({
      id,
      organizationId: actor.organizationId,
      role: input.role,
      patientId,
      practitionerId,
      email: deps.crypto.seal("invitations", "email", id, email),
      emailIndex,
      tokenHash: sha256(token),
      contactCodeHash: code ? sha256(code) : null,
      expiresAt,
      createdBy: actor.userId,
      createdAt: now,
    });
    await recordAudit(
      tx,
      audit,
      {
        action: "auth.invitation_created",
        outcome: "allowed",
        resourceType: "Invitation",
        resourceId: id,
        patientId,
        details: { role: input.role, ...(patientId ? { toContactOnFile: !offFile } : {}) },
      },
      now,
    );
    if (offFile) {
      // Disclosure-relevant: it shows in the patient's accounting of disclosures (164.528).
      await recordAudit(
        tx,
        audit,
        {
          action: "auth.invitation_off_file",
          outcome: "allowed",
          resourceType: "Invitation",
          resourceId: id,
          patientId,
          details: { basis: "invitation_to_address_not_on_file", contactOnFileNotified: true },
        },
        now,
      );
    }
  });
  if (offFile && contactOnFile && code) {
    mail.enqueue({
      kind: "invitation_notice",
      to: contactOnFile,
      subject: "A patient portal invitation for your record was sent to another address",
      text: [
        `Your clinic sent an invitation to open a patient portal account for your record to ${maskAddress(email)}, which is not the e-mail address we have on file for you.`,
        "",
        "If you asked for this, enter this confirmation code when you accept that invitation:",
        "",
        `    ${code}`,
        "",
        "If you did not ask for it, do not share this code with anyone (clinic staff will never ask for it) and contact your clinic.",
        `The code expires with the invitation at ${expiresAt.toISOString()}.`,
      ].join("\n"),
    });
  }
  mail.enqueue({
    kind: "invitation",
    to: email,
    subject:
      input.role === "patient" ? "Your patient portal invitation" : "Your Haven account invitation",
    text: [
      input.role === "patient"
        ? "You have been invited to the patient portal. To create your account, open the link below; you will be asked for your date of birth and a password."
        : `You have been invited to Haven as ${input.role}. To create your account, open the link below and choose a password; you will then set up an authenticator app.`,
      "",
      `${input.role === "patient" ? mail.linkBase : mail.staffLinkBase}/accept-invitation#token=${token}`,
      "",
      `Invitation code (if the link does not open): ${token}`,
      `The invitation expires at ${expiresAt.toISOString()} and works once.`,
    ].join("\n"),
  });
  return { invitationId: id, expiresAt };
}

/**
 * Accept an invitation: token + (for a portal invitation) the patient's date of birth, and, when
 * the invitation went to an address other than the contact on file, the confirmation code sent to
 * the contact on file (ADR 0008) + a new
 * password (NIST 800-63B rules, not built from the e-mail or the patient's name). Creates the
 * account, links it to the patient or practitioner, consumes the invitation (single use, in one
 * transaction with a row lock) and opens a session. A wrong date of birth or confirmation code
 * counts against the invitation (burned after 5) and the IP throttle. Every failure gives the same message.
 * Audited `auth.invitation_accepted` / `auth.invitation_failed`.
 * @throws UnauthorizedError (invalid, expired, used, revoked, wrong date of birth or code),
 *   PasswordPolicyError (BAD_REQUEST on `password`), TooManyRequestsError, ConflictError
 */
export async function acceptInvitation(
  deps: ServiceDeps & { db: Database },
  sessionsManager: SessionManager,
  input: {
    token: string;
    birthDate?: string | undefined;
    contactCode?: string | undefined;
    password: string;
  },
  request: LoginRequest,
): Promise<LoginResult> {
  const now = deps.now();
  const reservation = await reserve(deps.db, now, keysFor("invite", null, request.ip));
  if (reservation.blocked) {
    throw await auditDenial(
      deps.db,
      request,
      {
        action: "auth.login_throttled",
        resourceType: "Invitation",
        details: { scope: "invite", retryAfterSeconds: reservation.blocked.retryAfterSeconds },
      },
      new TooManyRequestsError(
        "Too many attempts; wait before trying again",
        reservation.blocked.retryAfterSeconds,
      ),
      now,
    );
  }
  const fail = (reason: string, invitationId?: string, patientId?: string | null) =>
    auditDenial(
      deps.db,
      request,
      {
        action: "auth.invitation_failed",
        resourceType: "Invitation",
        resourceId: invitationId,
        patientId: patientId ?? null,
        details: { reason },
      },
      new UnauthorizedError(INVALID_INVITATION, "invitation_invalid"),
      deps.now(),
    );

  const [inv] = await deps.db
    .select()
    .from(invitations)
    .where(eq(invitations.tokenHash, sha256(input.token)))
    .limit(1);
  if (!inv) throw await fail("unknown_token");
  if (inv.acceptedAt || inv.revokedAt || inv.expiresAt.getTime() <= now.getTime()) {
    throw await fail(
      inv.acceptedAt ? "used" : inv.revokedAt ? "revoked" : "expired",
      inv.id,
      inv.patientId,
    );
  }
  const email = deps.crypto.open<string>("invitations", "email", inv.id, inv.email);
  const names: string[] = [];
  if (inv.role === "patient" && inv.patientId) {
    const [p] = await deps.db
      .select({ demographics: patients.demographics })
      .from(patients)
      .where(eq(patients.id, inv.patientId))
      .limit(1);
    const d = p
      ? deps.crypto.open<Demographics>("patients", "demographics", inv.patientId, p.demographics)
      : null;
    const birthOk = Boolean(d?.birthDate) && d?.birthDate === input.birthDate;
    const codeOk =
      inv.contactCodeHash === null ||
      (input.contactCode !== undefined &&
        sha256(input.contactCode.toUpperCase()) === inv.contactCodeHash);
    if (!birthOk || !codeOk) {
      // Count the miss; burn the invitation at the limit.
      const [after] = await deps.db
        .update(invitations)
        .set({ failedAttempts: inv.failedAttempts + 1 })
        .where(and(eq(invitations.id, inv.id), eq(invitations.failedAttempts, inv.failedAttempts)))
        .returning({ failedAttempts: invitations.failedAttempts });
      if ((after?.failedAttempts ?? INVITATION_MAX_FAILURES) >= INVITATION_MAX_FAILURES) {
        await deps.db
          .update(invitations)
          .set({ revokedAt: now })
          .where(and(eq(invitations.id, inv.id), isNull(invitations.revokedAt)));
      }
      throw await fail(
        birthOk ? "contact_code_mismatch" : "birth_date_mismatch",
        inv.id,
        inv.patientId,
      );
    }
    if (!d) throw await fail("patient_missing", inv.id, inv.patientId);
    names.push(d.name.family, ...d.name.given);
  }
  assertPasswordAcceptable(input.password, { email, names }, "password");
  const passwordHash = await hashPassword(input.password);

  const userId = uuidv7();
  const result = await deps.db.transaction(async (tx) => {
    const [locked] = await tx
      .select({ acceptedAt: invitations.acceptedAt, revokedAt: invitations.revokedAt })
      .from(invitations)
      .where(eq(invitations.id, inv.id))
      .for("update");
    if (!locked || locked.acceptedAt || locked.revokedAt) return "used" as const;
    await tx.insert(users).values({
      id: userId,
      organizationId: inv.organizationId,
      role: inv.role,
      emailIndex: deps.crypto.index("user.email", email),
      email: deps.crypto.seal("users", "email", userId, email),
      passwordHash,
      passwordChangedAt: now,
    });
    if (inv.patientId) {
      const linked = await tx
        .update(patients)
        .set({ userId })
        .where(and(eq(patients.id, inv.patientId), isNull(patients.userId)))
        .returning({ id: patients.id });
      if (linked.length === 0) throw new ConflictError("This patient already has a portal account");
    }
    if (inv.practitionerId) {
      const linked = await tx
        .update(practitioners)
        .set({ userId })
        .where(and(eq(practitioners.id, inv.practitionerId), isNull(practitioners.userId)))
        .returning({ id: practitioners.id });
      if (linked.length === 0) throw new ConflictError("This practitioner already has an account");
    }
    await tx
      .update(invitations)
      .set({ acceptedAt: now, acceptedUserId: userId })
      .where(eq(invitations.id, inv.id));
    await recordAudit(
      tx,
      { ...request, userId, role: inv.role, organizationId: inv.organizationId },
      {
        action: "auth.invitation_accepted",
        outcome: "allowed",
        resourceType: "Invitation",
        resourceId: inv.id,
        patientId: inv.patientId,
        details: { role: inv.role },
      },
      now,
    );
    return "ok" as const;
  });
  if (result === "used") throw await fail("used", inv.id, inv.patientId);
  await reservation.succeed([]);
  const session = await sessionsManager.create(userId, {
    ip: request.ip,
    userAgent: request.userAgent,
    mfaVerified: false,
    now: deps.now(),
  });
  return {
    token: session.token,
    expiresAt: session.expiresAt,
    user: { id: userId, role: inv.role, organizationId: inv.organizationId },
    mfa: inv.role === "patient" ? "none" : "enrol",
  };
}

/**
 * Revoke an open invitation of the caller's organization (staff: portal invitations; admin: any).
 * Audited `auth.invitation_revoked`. @throws NotFoundError, ForbiddenError
 */
export async function revokeInvitation(
  deps: ServiceDeps & { db: Database },
  actor: Actor,
  audit: AuditActor,
  invitationId: string,
): Promise<void> {
  const [inv] = await deps.db
    .select({
      id: invitations.id,
      organizationId: invitations.organizationId,
      role: invitations.role,
      patientId: invitations.patientId,
    })
    .from(invitations)
    .where(eq(invitations.id, invitationId))
    .limit(1);
  if (!inv || inv.organizationId !== actor.organizationId)
    throw new NotFoundError("No such invitation");
  if (!invitableRoles(actor.role).includes(inv.role)) {
    throw new ForbiddenError("Your role may not manage this invitation", "role");
  }
  await deps.db
    .update(invitations)
    .set({ revokedAt: deps.now() })
    .where(
      and(
        eq(invitations.id, inv.id),
        isNull(invitations.revokedAt),
        isNull(invitations.acceptedAt),
      ),
    );
  await recordAudit(
    deps.db,
    audit,
    {
      action: "auth.invitation_revoked",
      outcome: "allowed",
      resourceType: "Invitation",
      resourceId: inv.id,
      patientId: inv.patientId,
    },
    deps.now(),
  );
}

/** One invitation as {@link listInvitations} shows it (never the token). */
export interface InvitationSummary {
  invitationId: string;
  role: Role;
  email: string;
  createdAt: Date;
  expiresAt: Date;
  acceptedAt: Date | null;
  revokedAt: Date | null;
  state: "pending" | "accepted" | "revoked" | "expired";
}

/**
 * The caller's organization's invitations of the roles the caller may invite (staff: portal
 * patients; admin: all), newest first by id (UUIDv7), `limit` a page after `cursor`; `pending`
 * keeps those neither accepted, revoked nor expired at `now`. E-mails are decrypted (a patient's
 * is PHI), so each page is audited `auth.invitations_listed` with its count.
 * @throws ValidationError (`bad_cursor`)
 */
export async function listInvitations(
  deps: ServiceDeps & { db: Database },
  actor: Actor,
  audit: AuditActor,
  page: { status: "pending" | "all"; limit: number; cursor?: string | undefined },
): Promise<{ items: InvitationSummary[]; nextCursor: string | null }> {
  const after = decodeOptionalCursor(page.cursor);
  const now = deps.now();
  const roles = invitableRoles(actor.role);
  const i = invitations;
  const rows =
    roles.length === 0
      ? []
      : await deps.db
          .select({
            id: i.id,
            role: i.role,
            email: i.email,
            createdAt: i.createdAt,
            expiresAt: i.expiresAt,
            acceptedAt: i.acceptedAt,
            revokedAt: i.revokedAt,
          })
          .from(i)
          .where(
            and(
              eq(i.organizationId, actor.organizationId),
              inArray(i.role, [...roles]),
              page.status === "pending"
                ? and(isNull(i.acceptedAt), isNull(i.revokedAt), gt(i.expiresAt, now))
                : undefined,
              after ? lt(i.id, after.id) : undefined,
            ),
          )
          .orderBy(desc(i.id))
          .limit(page.limit + 1);
  const items: InvitationSummary[] = rows.slice(0, page.limit).map((r) => ({
    invitationId: r.id,
    role: r.role,
    email: deps.crypto.open<string>("invitations", "email", r.id, r.email),
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    acceptedAt: r.acceptedAt,
    revokedAt: r.revokedAt,
    state: r.acceptedAt
      ? "accepted"
      : r.revokedAt
        ? "revoked"
        : r.expiresAt.getTime() <= now.getTime()
          ? "expired"
          : "pending",
  }));
  await recordAudit(
    deps.db,
    audit,
    {
      action: "auth.invitations_listed",
      outcome: "allowed",
      resourceType: "Invitation",
      details: { count: items.length },
    },
    now,
  );
  const last = items.at(-1);
  return {
    items,
    nextCursor:
      rows.length > page.limit && last ? encodeCursor(last.createdAt, last.invitationId) : null,
  };
}

/**
 * Change a workforce account's role (clinician ↔ staff ↔ admin). Every session of the account is
 * revoked, so the new role applies at the next sign-in (ASVS 3.3.x). Audited `auth.role_changed`.
 * @throws NotFoundError, ForbiddenError (not admin, self, service account), ValidationError
 */
export async function setRole(
  deps: ServiceDeps & { db: Database },
  sessionsManager: SessionManager,
  actor: Actor,
  audit: AuditActor,
  input: { userId: string; role: Role },
): Promise<{ sessionsRevoked: number }> {
  const target = await administrable(deps, actor, audit, input.userId, "auth.role_changed");
  if (!canChangeRole(target.role, input.role)) {
    throw invalidField("role", `a ${target.role} account cannot become ${input.role}`);
  }
  await deps.db
    .update(users)
    .set({ role: input.role, updatedAt: deps.now() })
    .where(eq(users.id, target.id));
  const revoked = await sessionsManager.revokeAllForUser(target.id);
  await recordAudit(
    deps.db,
    audit,
    {
      action: "auth.role_changed",
      outcome: "allowed",
      resourceType: "User",
      resourceId: target.id,
      details: { from: target.role, to: input.role, sessionsRevoked: revoked },
    },
    deps.now(),
  );
  return { sessionsRevoked: revoked };
}

/**
 * Disable (or re-enable) an account. Disabling revokes every session at once and makes the account
 * unable to sign in (same generic login error). Audited `auth.account_disabled` / `_enabled`.
 * @throws NotFoundError, ForbiddenError
 */
export async function setDisabled(
  deps: ServiceDeps & { db: Database },
  sessionsManager: SessionManager,
  actor: Actor,
  audit: AuditActor,
  input: { userId: string; disabled: boolean },
): Promise<{ sessionsRevoked: number }> {
  const action = input.disabled ? "auth.account_disabled" : "auth.account_enabled";
  const target = await administrable(deps, actor, audit, input.userId, action);
  await deps.db
    .update(users)
    .set({ disabledAt: input.disabled ? deps.now() : null, updatedAt: deps.now() })
    .where(eq(users.id, target.id));
  const revoked = input.disabled ? await sessionsManager.revokeAllForUser(target.id) : 0;
  await recordAudit(
    deps.db,
    audit,
    {
      action,
      outcome: "allowed",
      resourceType: "User",
      resourceId: target.id,
      details: { sessionsRevoked: revoked },
    },
    deps.now(),
  );
  return { sessionsRevoked: revoked };
}

/**
 * Admin reset of a user's MFA (lost phone): removes the authenticator and recovery codes and
 * revokes every session; the user enrols again at next sign-in. Audited `auth.mfa_reset`.
 * @throws NotFoundError, ForbiddenError (not admin, self)
 */
export async function resetUserMfa(
  deps: ServiceDeps & { db: Database },
  sessionsManager: SessionManager,
  actor: Actor,
  audit: AuditActor,
  userId: string,
): Promise<{ sessionsRevoked: number }> {
  const target = await administrable(deps, actor, audit, userId, "auth.mfa_reset");
  await deps.db.transaction(async (tx) => {
    await clearMfa(tx, target.id, deps.now());
  });
  const revoked = await sessionsManager.revokeAllForUser(target.id);
  await recordAudit(
    deps.db,
    audit,
    {
      action: "auth.mfa_reset",
      outcome: "allowed",
      resourceType: "User",
      resourceId: target.id,
      details: { sessionsRevoked: revoked },
    },
    deps.now(),
  );
  return { sessionsRevoked: revoked };
}

/** One account in the admin's user list. */
export interface UserSummary {
  id: string;
  email: string;
  role: Role;
  disabled: boolean;
  mfaEnrolled: boolean;
  createdAt: Date;
  passwordChangedAt: Date | null;
}

/** One page of {@link listUsers}. */
export interface UserPage {
  items: UserSummary[];
  /** Cursor of the next page; null on the last one. */
  nextCursor: string | null;
}

/**
 * The admin's organization's accounts (service accounts excluded: see `auth.apiKeys.list`),
 * oldest first, `limit` per page after `cursor`, only `roles` when given. The keyset is the id alone: account ids are
 * UUIDv7, so id order is creation order, and `created_at` (microseconds, set by Postgres) would not
 * survive the cursor's millisecond time; rows added between pages are neither skipped nor repeated. E-mails are decrypted (a patient's e-mail is PHI), so
 * each page is audited `auth.users_listed` with its count.
 * @throws ValidationError (`bad_cursor`)
 */
export async function listUsers(
  deps: ServiceDeps & { db: Database },
  actor: Actor,
  audit: AuditActor,
  page: {
    limit: number;
    cursor?: string | undefined;
    roles?: readonly ("patient" | AssignableRole)[] | undefined;
  } = { limit: 50 },
): Promise<UserPage> {
  const after = decodeOptionalCursor(page.cursor);
  const rows = await deps.db
    .select({
      id: users.id,
      email: users.email,
      role: users.role,
      disabledAt: users.disabledAt,
      totpEnabledAt: users.totpEnabledAt,
      createdAt: users.createdAt,
      passwordChangedAt: users.passwordChangedAt,
    })
    .from(users)
    .where(
      and(
        eq(users.organizationId, actor.organizationId),
        ne(users.role, "service"),
        page.roles ? inArray(users.role, [...page.roles]) : undefined,
        after ? gt(users.id, after.id) : undefined,
      ),
    )
    .orderBy(asc(users.id))
    .limit(page.limit + 1);
  const list = rows.slice(0, page.limit).map((r) => ({
    id: r.id,
    email: deps.crypto.open<string>("users", "email", r.id, r.email),
    role: r.role,
    disabled: r.disabledAt !== null,
    mfaEnrolled: r.totpEnabledAt !== null,
    createdAt: r.createdAt,
    passwordChangedAt: r.passwordChangedAt,
  }));
  await recordAudit(
    deps.db,
    audit,
    {
      action: "auth.users_listed",
      outcome: "allowed",
      resourceType: "User",
      details: { count: list.length },
    },
    deps.now(),
  );
  const last = list.at(-1);
  return {
    items: list,
    nextCursor: rows.length > page.limit && last ? encodeCursor(last.createdAt, last.id) : null,
  };
}

/**
 * Accept an invitation ({@link acceptInvitation}) and set the new session's cookie, as a sign-in.
 * @throws as {@link acceptInvitation}
 */
export async function acceptInvitationAndSignIn(
  deps: ServiceDeps & { db: Database },
  io: SessionIo,
  input: Parameters<typeof acceptInvitation>[2],
  request: LoginRequest,
): Promise<LoginResult> {
  const result = await acceptInvitation(deps, io.sessions, input, request);
  io.setCookie(io.sessions.cookie(result.token));
  return result;
}
