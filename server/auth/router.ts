import { z } from "zod";
import { recordAudit } from "../audit/service.ts";
import { protectedProcedure, publicProcedure, router } from "../trpc.ts";
import { ROLES } from "./roles.ts";
import { loginInput, loginOutput, meOutput } from "./schemas.ts";
import { login } from "./service.ts";

export const authRouter = router({
  /**
   * `auth.login` — e-mail + password → session. Sets the `haven_session` cookie (HttpOnly,
   * SameSite=Lax, Secure in production) and returns the raw token once, for `Authorization: Bearer`.
   * Input `{ email, password }`. Errors: UNAUTHORIZED with one generic message (OWASP ASVS 2.2.1).
   */
  login: publicProcedure
    .meta({ roles: "public" })
    .input(loginInput)
    .output(loginOutput)
    .mutation(async ({ ctx, input }) => {
      const result = await login(ctx.deps, ctx.sessions, input, {
        ...ctx.auditActor,
        userAgent: ctx.userAgent,
      });
      ctx.setCookie(ctx.sessions.cookie(result.token));
      return result;
    }),

  /** `auth.logout` — revokes the current session server-side and clears the cookie. */
  logout: protectedProcedure
    .meta({ roles: ROLES })
    .input(z.strictObject({}).optional())
    .output(z.object({ ok: z.literal(true) }))
    .mutation(async ({ ctx }) => {
      await ctx.sessions.revoke(ctx.actor.sessionId);
      ctx.setCookie(ctx.sessions.blankCookie());
      await recordAudit(
        ctx.deps.db,
        ctx.auditActor,
        { action: "auth.logout", outcome: "allowed", resourceType: "Session" },
        ctx.deps.now(),
      );
      return { ok: true as const };
    }),

  /** `auth.me` — the signed-in account (ids and role; no PHI). */
  me: protectedProcedure
    .meta({ roles: ROLES })
    .input(z.strictObject({}).optional())
    .output(meOutput)
    .query(({ ctx }) => ({
      user: {
        id: ctx.actor.userId,
        role: ctx.actor.role,
        organizationId: ctx.actor.organizationId,
        patientId: ctx.actor.patientId,
        practitionerId: ctx.actor.practitionerId,
      },
      mfaVerified: ctx.mfaVerified,
    })),
});
