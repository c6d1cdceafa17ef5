import { eq } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import { users } from "../../db/schema/index.ts";
import { type AuditActor, recordAudit } from "../audit/service.ts";
import type { ServiceDeps } from "../deps.ts";
import { ConflictError, sqlState, UnauthorizedError } from "../errors.ts";
import { hashPassword, verifyDummy, verifyPassword } from "./password.ts";
import type { Role } from "./roles.ts";
import type { SessionManager } from "./session.ts";

/** One generic message for every failed login, so it never tells which part was wrong (ASVS 2.2). */
export const LOGIN_FAILED_MESSAGE = "Invalid email or password";

export interface LoginInput {
  email: string;
  password: string;
}
export interface LoginResult {
  /** Raw bearer token: shown to this caller once, stored only as its SHA-256. */
  token: string;
  expiresAt: Date;
  user: { id: string; role: Role; organizationId: string };
}

/**
 * Verify e-mail + password and open a session.
 * Unknown e-mail, wrong password and disabled account all cost one argon2 verification and throw
 * the same {@link UnauthorizedError}. Success and failure are audited (no password in the record).
 * @throws UnauthorizedError
 */
export async function login(
  deps: ServiceDeps,
  sessionsManager: SessionManager,
  input: LoginInput,
  request: AuditActor & { userAgent: string | null },
): Promise<LoginResult> {
  const emailIndex = deps.crypto.index("user.email", input.email);
  const [user] = await deps.db
    .select()
    .from(users)
    .where(eq(users.emailIndex, emailIndex))
    .limit(1);
  const ok = user
    ? await verifyPassword(user.passwordHash, input.password)
    : await verifyDummy(input.password);
  if (!user || !ok || user.disabledAt) {
    await recordAudit(
      deps.db,
      {
        ...request,
        userId: user?.id ?? null,
        role: user?.role ?? null,
        organizationId: user?.organizationId ?? null,
      },
      {
        action: "auth.login_failed",
        outcome: "denied",
        resourceType: "User",
        resourceId: user?.id,
        details: {
          reason: !user ? "unknown_account" : user.disabledAt ? "disabled" : "bad_password",
        },
      },
      deps.now(),
    );
    throw new UnauthorizedError(LOGIN_FAILED_MESSAGE, "invalid_credentials");
  }
  const session = await sessionsManager.create(user.id, {
    ip: request.ip,
    userAgent: request.userAgent,
    mfaVerified: false,
    now: deps.now(),
  });
  await recordAudit(
    deps.db,
    {
      ...request,
      userId: user.id,
      role: user.role,
      organizationId: user.organizationId,
      sessionId: session.sessionId,
    },
    { action: "auth.login", outcome: "allowed", resourceType: "User", resourceId: user.id },
    deps.now(),
  );
  return {
    token: session.token,
    expiresAt: session.expiresAt,
    user: { id: user.id, role: user.role, organizationId: user.organizationId },
  };
}

export interface NewUser {
  email: string;
  password: string;
  role: Role;
  organizationId: string;
}

/**
 * Create an account (used by the demo seed, admin tools and tests). The e-mail is stored encrypted
 * with a blind index for lookup.
 * @returns the new user's id
 * @throws ConflictError when the e-mail is already registered
 */
export async function createUser(deps: ServiceDeps, input: NewUser): Promise<string> {
  const id = uuidv7();
  const passwordHash = await hashPassword(input.password);
  try {
    await deps.db.insert(users).values({
      id,
      organizationId: input.organizationId,
      role: input.role,
      emailIndex: deps.crypto.index("user.email", input.email),
      email: deps.crypto.seal("users", "email", id, input.email),
      passwordHash,
      passwordChangedAt: deps.now(),
    });
  } catch (err) {
    if (sqlState(err) === "23505")
      throw new ConflictError("An account with this email already exists");
    throw err;
  }
  return id;
}
