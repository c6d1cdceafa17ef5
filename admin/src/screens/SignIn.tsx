import type { RouterOutputs } from "@haven/client";
import { type FormEvent, useState } from "react";
import { fieldIssues, haven, messageOf } from "../api.ts";
import type { Me, SignOutCause } from "../session.tsx";
import { Button, ErrorNote, Field } from "../ui.tsx";

type Step =
  | { kind: "password" }
  | { kind: "verify" }
  | { kind: "enrol"; enrolment: RouterOutputs["auth"]["mfa"]["enroll"] | null }
  | { kind: "codes"; codes: string[] };

const CAUSES: Record<SignOutCause, string> = {
  idle: "You were signed out because the session was idle. Sign in again to continue; text you had typed is kept.",
  expired: "Your session has ended. Sign in again to continue.",
  signed_out: "You are signed out.",
};

/**
 * Screen 1: sign-in. Password, then the TOTP step (or a recovery code); a workforce account
 * without an authenticator enrols here (QR code + secret, confirm with a code, then the one-time
 * recovery codes). The server sets the HttpOnly session cookie at each step; nothing is stored
 * by the page.
 */
export function SignIn(props: { cause: SignOutCause | null; me: Me | null; onDone(): void }) {
  const initial: Step = props.me
    ? props.me.mfaEnrolled
      ? { kind: "verify" }
      : { kind: "enrol", enrolment: null }
    : { kind: "password" };
  const [step, setStep] = useState<Step>(initial);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [useRecovery, setUseRecovery] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const issues = fieldIssues(error);

  async function run(fn: () => Promise<void>) {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const submitPassword = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      const r = await haven.auth.login.mutate({ email, password });
      setPassword("");
      if (r.mfa === "none") props.onDone();
      else if (r.mfa === "verify") setStep({ kind: "verify" });
      else setStep({ kind: "enrol", enrolment: await haven.auth.mfa.enroll.mutate() });
    });
  };
  const submitCode = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      await haven.auth.mfa.verify.mutate(
        useRecovery ? { recoveryCode: code.trim() } : { code: code.replace(/\s/g, "") },
      );
      props.onDone();
    });
  };
  const startEnrolment = () =>
    void run(async () =>
      setStep({ kind: "enrol", enrolment: await haven.auth.mfa.enroll.mutate() }),
    );
  const confirmEnrolment = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      const r = await haven.auth.mfa.confirm.mutate({ code: code.replace(/\s/g, "") });
      setCode("");
      setStep({ kind: "codes", codes: r.recoveryCodes });
    });
  };

  return (
    <main className="signin" id="main">
      <h1>Haven clinic admin</h1>
      {props.cause && step.kind === "password" && (
        <p className="note note-info" role="status">
          {CAUSES[props.cause]}
        </p>
      )}
      {step.kind === "password" && (
        <form onSubmit={submitPassword} aria-labelledby="signin-h" noValidate>
          <h2 id="signin-h">Sign in</h2>
          <Field
            label="E-mail"
            name="email"
            type="email"
            autoComplete="username"
            value={email}
            onChange={setEmail}
            error={issues.email}
            autoFocus
          />
          <Field
            label="Password"
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={setPassword}
            error={issues.password}
          />
          {error !== null && Object.keys(issues).length === 0 && (
            <ErrorNote>{messageOf(error)}</ErrorNote>
          )}
          <Button type="submit" variant="primary" isDisabled={busy}>
            {busy ? "Signing in…" : "Sign in"}
          </Button>
        </form>
      )}
      {step.kind === "verify" && (
        <form onSubmit={submitCode} aria-labelledby="verify-h" noValidate>
          <h2 id="verify-h">Authenticator code</h2>
          <p>
            {useRecovery
              ? "Enter one of your recovery codes. Each works once."
              : "Enter the 6-digit code from your authenticator app."}
          </p>
          <Field
            label={useRecovery ? "Recovery code" : "6-digit code"}
            name="code"
            autoComplete="one-time-code"
            inputMode={useRecovery ? "text" : "numeric"}
            value={code}
            onChange={setCode}
            error={issues.code ?? issues.recoveryCode}
            autoFocus
          />
          {error !== null && Object.keys(issues).length === 0 && (
            <ErrorNote>{messageOf(error)}</ErrorNote>
          )}
          <div className="row">
            <Button type="submit" variant="primary" isDisabled={busy}>
              Verify
            </Button>
            <Button onPress={() => setUseRecovery(!useRecovery)}>
              {useRecovery ? "Use the authenticator instead" : "Use a recovery code"}
            </Button>
          </div>
        </form>
      )}
      {step.kind === "enrol" && (
        <form onSubmit={confirmEnrolment} aria-labelledby="enrol-h" noValidate>
          <h2 id="enrol-h">Set up your authenticator</h2>
          {step.enrolment ? (
            <>
              <p>
                Staff accounts need a second step. Scan this code with an authenticator app, or type
                the secret in, then enter the 6-digit code it shows.
              </p>
              <img
                className="qr"
                src={step.enrolment.qrDataUrl}
                alt="QR code for the authenticator app (the secret is also printed below)"
                width={180}
                height={180}
              />
              <p>
                Secret: <code data-testid="totp-secret">{step.enrolment.secret}</code>
              </p>
              <Field
                label="6-digit code"
                name="code"
                autoComplete="one-time-code"
                inputMode="numeric"
                value={code}
                onChange={setCode}
                error={issues.code}
              />
              <Button type="submit" variant="primary" isDisabled={busy}>
                Confirm
              </Button>
            </>
          ) : (
            <Button onPress={startEnrolment} variant="primary" isDisabled={busy}>
              Show my QR code
            </Button>
          )}
          {error !== null && Object.keys(issues).length === 0 && (
            <ErrorNote>{messageOf(error)}</ErrorNote>
          )}
        </form>
      )}
      {step.kind === "codes" && (
        <section aria-labelledby="codes-h">
          <h2 id="codes-h">Your recovery codes</h2>
          <p>
            Each code signs you in once if you lose the authenticator. They are shown only now:
            print them or store them in a password manager.
          </p>
          <ul className="codes" aria-label="Recovery codes">
            {step.codes.map((c) => (
              <li key={c}>
                <code>{c}</code>
              </li>
            ))}
          </ul>
          <Button variant="primary" onPress={props.onDone}>
            I have saved them — continue
          </Button>
        </section>
      )}
    </main>
  );
}
