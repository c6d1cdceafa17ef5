import { isHavenError, type RouterOutputs } from "@haven/client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useEffect, useState } from "react";
import { FieldError, Label, Text, TextArea, TextField } from "react-aria-components";
import { fieldIssues, haven, messageOf } from "../api.ts";
import { useDraft } from "../session.tsx";
import { Button, ErrorNote, Field } from "../ui.tsx";

/** One emergency grant as `access.breakGlass` / `access.myGrants` return it (UTC instants). */
export type Grant = RouterOutputs["access"]["myGrants"][number];

/** Query key of the caller's active grants (`access.myGrants`). */
export const GRANTS_KEY = ["myGrants"] as const;

/** The caller's active emergency grants; only clinicians may ask (`enabled` false otherwise). */
export function useMyGrants(enabled: boolean) {
  return useQuery({
    queryKey: GRANTS_KEY,
    queryFn: () => haven.access.myGrants.query(),
    enabled,
    staleTime: 0,
  });
}

/** Plain-language reasons for the break-the-glass refusals the server names in `data.reason`. */
const BREAK_GLASS_REASONS: Record<string, string> = {
  other_organization: "This patient belongs to another organization: emergency access is refused.",
  care_relationship_exists:
    "You already have a care relationship with this patient, so no emergency access is needed. Reload the chart.",
  mfa_not_enrolled: "Emergency access needs an authenticator on your account. Ask an admin.",
};

/** `now` in ms, re-rendered every `everyMs` (the countdown's clock). */
function useNow(everyMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), everyMs);
    return () => window.clearInterval(t);
  }, [everyMs]);
  return now;
}

/** `ms` as `m:ss` (or `h:mm:ss`); negative counts as 0. */
export function formatLeft(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** A UTC instant as `HH:MM UTC` (the audit trail's clock). */
function utcTime(t: Date): string {
  return `${t.toISOString().slice(11, 16)} UTC`;
}

/**
 * Screen 5a: break-the-glass request, offered on the refusal page to a clinician without a care
 * relationship (HIPAA 45 CFR 164.312(a)(2)(ii) emergency access). Needs a stated reason (10–1000
 * characters, reviewed by the organization's admins) and a FRESH authenticator code
 * (re-authentication, OWASP ASVS 2.8); both are checked by `access.breakGlass`, whose zod field
 * messages (`reason`, `code`) show under their fields. The reason is kept as a draft across an
 * idle sign-out. `onGranted` gets the new grant.
 */
export function BreakGlassForm(props: { patientId: string; onGranted(grant: Grant): void }) {
  const qc = useQueryClient();
  const [reason, setReason, clearReason, reasonRestored] = useDraft(
    `breakglass.${props.patientId}`,
    "",
    "the reason for emergency access",
  );
  const [code, setCode] = useState("");
  const grant = useMutation({
    mutationFn: () =>
      haven.access.breakGlass.mutate({
        patientId: props.patientId,
        reason,
        code: code.replace(/\s/g, ""),
      }),
    onSuccess: async (g) => {
      clearReason();
      setCode("");
      await qc.invalidateQueries({ queryKey: GRANTS_KEY });
      props.onGranted(g);
    },
    onError: () => setCode(""),
  });
  const issues = fieldIssues(grant.error);
  const reasonCode = isHavenError(grant.error) ? (grant.error.data.reason ?? null) : null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    grant.mutate();
  };
  return (
    <form className="breakglass" onSubmit={submit} aria-labelledby="bg-h" noValidate>
      <h2 id="bg-h">Emergency access (break the glass)</h2>
      <p>
        State why you need this chart now and confirm with a new code from your authenticator. You
        get read access to this one patient for a limited time; every read is recorded and your
        organization's admins review the access afterwards.
      </p>
      <TextField
        className="field"
        name="reason"
        value={reason}
        onChange={setReason}
        isInvalid={Boolean(issues.reason)}
        isRequired
        validationBehavior="aria"
      >
        <Label>Reason for emergency access</Label>
        <TextArea rows={3} maxLength={1000} />
        <Text slot="description">
          At least 10 characters. Admins will read it.
          {reasonRestored && reason
            ? " Restored: the text you typed before you were signed out."
            : ""}
        </Text>
        <FieldError className="field-error">{issues.reason}</FieldError>
      </TextField>
      <Field
        label="6-digit authenticator code"
        name="code"
        autoComplete="one-time-code"
        inputMode="numeric"
        value={code}
        onChange={setCode}
        error={issues.code}
        description="A fresh code: one already used to sign in is refused."
        required
      />
      {grant.isError && Object.keys(issues).length === 0 && (
        <ErrorNote>
          {(reasonCode && BREAK_GLASS_REASONS[reasonCode]) ?? messageOf(grant.error)}
        </ErrorNote>
      )}
      <Button type="submit" variant="danger" isDisabled={grant.isPending}>
        {grant.isPending ? "Requesting access…" : "Break the glass and open the chart"}
      </Button>
    </form>
  );
}

/**
 * Screen 5b: the banner over a chart opened under an emergency grant: what it is, until when
 * (UTC), and a live countdown from the grant's `expiresAt`. Screen readers hear the state once a
 * minute (the `role="status"` text changes per minute; the per-second clock is hidden from them).
 * "End emergency access now" calls `access.revoke` (the holder may revoke their own grant). At
 * `expiresAt`, or after revoking, `onEnded` is called once; the caller closes the chart.
 */
export function EmergencyBanner(props: {
  grant: Grant;
  onEnded(how: "expired" | "revoked", at: Date): void;
}) {
  const now = useNow(1000);
  const left = props.grant.expiresAt.getTime() - now;
  const { onEnded, grant } = props;
  const revoke = useMutation({
    mutationFn: () => haven.access.revoke.mutate({ grantId: grant.grantId }),
    onSuccess: (g) => onEnded("revoked", g.revokedAt ?? new Date()),
  });
  useEffect(() => {
    if (left <= 0) onEnded("expired", grant.expiresAt);
  }, [left, onEnded, grant.expiresAt]);
  const minutes = Math.max(0, Math.ceil(left / 60_000));
  return (
    <section className="banner emergency" aria-labelledby="emergency-h" data-testid="emergency">
      <h2 id="emergency-h">Emergency access</h2>
      <p role="status" data-testid="emergency-status">
        You are viewing this chart under break-the-glass access until {utcTime(grant.expiresAt)}:{" "}
        {minutes === 1 ? "less than a minute" : `about ${minutes} minutes`} left. Every read is
        recorded and reviewed.
      </p>
      <p className="countdown">
        Time left: <span data-testid="emergency-left">{formatLeft(left)}</span>
      </p>
      {revoke.isError && <ErrorNote>{messageOf(revoke.error)}</ErrorNote>}
      <Button onPress={() => revoke.mutate()} isDisabled={revoke.isPending}>
        {revoke.isPending ? "Ending…" : "End emergency access now"}
      </Button>
    </section>
  );
}

/** How emergency access ended: at its expiry, ended by the holder, or ended elsewhere (admin). */
export type EndedHow = "expired" | "revoked" | "ended";

/** The message shown once emergency access ended, announced (`role="status"`). */
export function EmergencyEnded(props: { how: EndedHow; at: Date }) {
  return (
    <p className="note note-info" role="status" data-testid="emergency-ended">
      {props.how === "expired"
        ? `Your emergency access to this chart expired at ${utcTime(props.at)}. The chart is closed.`
        : props.how === "revoked"
          ? `You ended emergency access at ${utcTime(props.at)}. The chart is closed.`
          : `Your emergency access to this chart was ended (${utcTime(props.at)}). The chart is closed.`}
    </p>
  );
}
