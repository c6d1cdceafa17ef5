import { isHavenError } from "@haven/client";
import { useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useEffect, useState } from "react";
import { useLocation, useNavigate } from "react-router";
import { fieldIssues, haven, messageOf } from "../api.ts";
import { Button, ErrorNote, Field } from "../ui.tsx";

/** The invitation token from the e-mail's link: `#token=…` (as the server writes it) or `?token=…`. */
function tokenFrom(hash: string, search: string): string {
  const h = new URLSearchParams(hash.replace(/^#/, ""));
  return h.get("token") ?? new URLSearchParams(search).get("token") ?? "";
}

/**
 * Public page for an invitation link (`/admin/accept-invitation#token=…`, the link
 * `auth.invitations.create` e-mails when `HAVEN_PUBLIC_URL` points at the panel). The invitee
 * chooses a password (the server's NIST 800-63B policy messages appear under the field), the
 * invitation is consumed (`auth.invitations.accept`, which sets the session cookie) and the panel
 * continues with the authenticator enrolment of the sign-in screen; after it the user is signed in.
 * The token is dropped from the address bar at once (it stays in this page's memory only).
 */
export function AcceptInvitation() {
  const location = useLocation();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [token, setToken] = useState(() => tokenFrom(location.hash, location.search));
  const [tokenShown] = useState(() => tokenFrom(location.hash, location.search) === "");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [mismatch, setMismatch] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const issues = fieldIssues(error);

  // Keep the single-use token out of the history and of any later copy of the address.
  const hasTokenInUrl = Boolean(location.hash || location.search);
  useEffect(() => {
    if (hasTokenInUrl) navigate("/accept-invitation", { replace: true });
  }, [hasTokenInUrl, navigate]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (password !== confirm) {
      setMismatch(true);
      return;
    }
    setMismatch(false);
    setBusy(true);
    setError(null);
    try {
      await haven.auth.invitations.accept.mutate({ token: token.trim(), password });
      setPassword("");
      setConfirm("");
      // The new session: the sign-in screen takes over with the authenticator enrolment.
      qc.setQueryData(["me"], await haven.auth.me.query());
      navigate("/", { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin" id="main">
      <h1>Haven clinic admin</h1>
      <form onSubmit={(e) => void submit(e)} aria-labelledby="accept-h" noValidate>
        <h2 id="accept-h">Accept your invitation</h2>
        <p>
          Choose a password for your new account. Next you will set up an authenticator app, which
          staff accounts need for every sign-in.
        </p>
        {tokenShown && (
          <Field
            label="Invitation code"
            name="token"
            autoComplete="off"
            value={token}
            onChange={setToken}
            error={issues.token}
            description="The code from the invitation e-mail, if the link did not open this page."
            required
          />
        )}
        <Field
          label="New password"
          name="password"
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={setPassword}
          error={issues.password}
          description="At least 12 characters; not your e-mail, not a common password."
          required
          autoFocus={!tokenShown}
        />
        <Field
          label="Repeat the password"
          name="confirm"
          type="password"
          autoComplete="new-password"
          value={confirm}
          onChange={setConfirm}
          error={mismatch ? "The two passwords are not the same." : undefined}
          required
        />
        {error !== null && Object.keys(issues).length === 0 && (
          <ErrorNote>
            {isHavenError(error, "UNAUTHORIZED")
              ? "This invitation link is not valid any more: it may have been used, revoked or have expired. Ask your admin for a new one."
              : messageOf(error)}
          </ErrorNote>
        )}
        {!tokenShown && issues.token && <ErrorNote>{issues.token}</ErrorNote>}
        <Button type="submit" variant="primary" isDisabled={busy}>
          {busy ? "Creating your account…" : "Create account"}
        </Button>
      </form>
    </main>
  );
}
