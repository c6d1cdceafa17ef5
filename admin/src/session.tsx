import type { RouterOutputs } from "@haven/client";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createContext, type ReactNode, useCallback, useContext, useEffect, useState } from "react";
import { Dialog, Heading, Modal, ModalOverlay } from "react-aria-components";
import { Link, useLocation } from "react-router";
import { haven, isSignedOut, messageOf } from "./api.ts";
import {
  clearAllDrafts,
  keepOnlyDraftsOf,
  listDrafts,
  readDraft,
  removeDraft,
  writeDraft,
} from "./drafts.ts";
import { Button, ErrorNote } from "./ui.tsx";
import "./ops.css";

export type Me = RouterOutputs["auth"]["me"];

/** Why the panel went back to the sign-in page, shown there as a message. */
export type SignOutCause = "idle" | "expired" | "signed_out";

type Listener = (cause: SignOutCause) => void;
const listeners = new Set<Listener>();
/** Process-wide "the session is over" signal (query cache errors, idle timer, sign-out button). */
export const signedOutBus = {
  emit(cause: SignOutCause) {
    for (const l of listeners) l(cause);
  },
  on(l: Listener) {
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  },
};

interface SessionValue {
  me: Me;
  signOut(cause?: SignOutCause): Promise<void>;
}
const SessionContext = createContext<SessionValue | null>(null);

/** The signed-in account; only valid below {@link SessionGate}'s signed-in branch. */
export function useSession(): SessionValue {
  const v = useContext(SessionContext);
  if (!v) throw new Error("useSession outside a signed-in tree");
  return v;
}

const ACTIVITY = ["pointerdown", "keydown", "wheel", "touchstart"] as const;
/** How long before the idle sign-out the warning dialog opens (ms). */
export const IDLE_WARNING_MS = 60_000;
/**
 * Local activity is reported to the server at most this often (ms), so typing into a form without
 * sending anything still counts as activity there too (the server slides `last_seen_at` only on
 * requests, at most once a minute).
 */
const KEEPALIVE_MS = 60_000;

/**
 * Decides between the sign-in flow and the panel. After the server's idle timeout without
 * keyboard/pointer activity it signs out (automatic logoff, 45 CFR 164.312(a)(2)(iii); OWASP
 * ASVS 3.3.2) and says so; {@link IDLE_WARNING_MS} before that, a dialog offers "Stay signed in",
 * which refreshes the server session. Activity is forwarded to the server at most once a minute
 * so both clocks agree. Text typed into forms is kept by {@link useDraft} in this tab's
 * sessionStorage and offered again after signing back in; a deliberate sign-out clears it.
 */
export function SessionGate(props: {
  signedIn: (me: Me) => ReactNode;
  signedOut: (props: { cause: SignOutCause | null; me: Me | null; onDone(): void }) => ReactNode;
}) {
  const qc = useQueryClient();
  const [cause, setCause] = useState<SignOutCause | null>(null);
  const me = useQuery({
    queryKey: ["me"],
    queryFn: async () => {
      try {
        return await haven.auth.me.query();
      } catch (err) {
        if (isSignedOut(err)) return null;
        throw err;
      }
    },
    staleTime: Number.POSITIVE_INFINITY,
  });

  const signOut = useCallback(
    async (why: SignOutCause = "signed_out") => {
      // Leaving on purpose takes the drafts along; an idle or expired session keeps them.
      if (why === "signed_out") clearAllDrafts();
      await haven.auth.logout.mutate().catch(() => undefined);
      qc.clear();
      setCause(why);
      qc.setQueryData(["me"], null);
    },
    [qc],
  );

  useEffect(() => signedOutBus.on((why) => void signOut(why)), [signOut]);

  const user = me.data;
  const verified = Boolean(user && (user.mfaVerified || user.user.role === "patient"));
  const idleMinutes = user?.idleTimeoutMinutes ?? null;
  const userId = user?.user.id ?? null;
  useEffect(() => {
    if (verified && userId) keepOnlyDraftsOf(userId);
  }, [verified, userId]);

  // Epoch ms at which the idle sign-out happens while the warning is open, else null.
  const [warnUntil, setWarnUntil] = useState<number | null>(null);
  const [staying, setStaying] = useState(false);
  const [stayError, setStayError] = useState<string | null>(null);
  const [restart, setRestart] = useState(0);
  useEffect(() => {
    if (!verified || idleMinutes === null) return;
    void restart;
    const idleMs = idleMinutes * 60_000;
    let warnTimer = 0;
    let outTimer = 0;
    let warning = false;
    let lastPing = Date.now();
    const arm = () => {
      window.clearTimeout(warnTimer);
      window.clearTimeout(outTimer);
      const deadline = Date.now() + idleMs;
      warnTimer = window.setTimeout(
        () => {
          warning = true;
          setWarnUntil(deadline);
        },
        Math.max(0, idleMs - IDLE_WARNING_MS),
      );
      outTimer = window.setTimeout(() => {
        setWarnUntil(null);
        void signOut("idle");
      }, idleMs);
    };
    const activity = () => {
      // While the warning is open only its button counts: a stray key press must not hide it.
      if (warning) return;
      arm();
      if (Date.now() - lastPing >= KEEPALIVE_MS) {
        lastPing = Date.now();
        haven.auth.me.query().catch((err: unknown) => {
          if (isSignedOut(err)) signedOutBus.emit("expired");
        });
      }
    };
    arm();
    for (const e of ACTIVITY) window.addEventListener(e, activity, { passive: true });
    return () => {
      window.clearTimeout(warnTimer);
      window.clearTimeout(outTimer);
      for (const e of ACTIVITY) window.removeEventListener(e, activity);
    };
  }, [verified, idleMinutes, signOut, restart]);

  const stay = async () => {
    setStaying(true);
    setStayError(null);
    try {
      // Any authenticated request slides the server's idle clock; auth.me is the cheapest.
      qc.setQueryData(["me"], await haven.auth.me.query());
      setWarnUntil(null);
      setRestart((n) => n + 1);
    } catch (err) {
      if (isSignedOut(err)) {
        setWarnUntil(null);
        signedOutBus.emit("expired");
      } else setStayError(messageOf(err));
    } finally {
      setStaying(false);
    }
  };

  if (me.isPending)
    return (
      <p className="center" role="status">
        Loading…
      </p>
    );
  if (me.isError)
    return (
      <p className="center" role="alert">
        Haven could not be reached. Reload the page to try again.
      </p>
    );
  if (!user || !verified) {
    return props.signedOut({
      cause,
      me: user ?? null,
      onDone: () => {
        setCause(null);
        void qc.invalidateQueries({ queryKey: ["me"] });
      },
    });
  }
  return (
    <SessionContext.Provider value={{ me: user, signOut }}>
      {props.signedIn(user)}
      {warnUntil !== null && (
        <IdleWarning
          until={warnUntil}
          busy={staying}
          error={stayError}
          onStay={() => void stay()}
          onSignOut={() => {
            setWarnUntil(null);
            void signOut("signed_out");
          }}
        />
      )}
    </SessionContext.Provider>
  );
}

/**
 * The idle warning: a modal alert dialog (focus moved into it, announced) with a live countdown
 * to the automatic sign-out, "Stay signed in" (refreshes the session) and "Sign out now".
 */
function IdleWarning(props: {
  until: number;
  busy: boolean;
  error: string | null;
  onStay(): void;
  onSignOut(): void;
}) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), 1_000);
    return () => window.clearInterval(t);
  }, []);
  const seconds = Math.max(0, Math.ceil((props.until - now) / 1_000));
  return (
    <ModalOverlay
      className="dialog-backdrop"
      isOpen
      isDismissable={false}
      isKeyboardDismissDisabled
    >
      <Modal>
        <Dialog className="dialog" role="alertdialog" aria-describedby="idle-warning-text">
          <Heading slot="title">Are you still there?</Heading>
          <p id="idle-warning-text">
            For patients' privacy you will be signed out in{" "}
            <strong data-testid="idle-countdown">{seconds} seconds</strong> because there has been
            no activity. Text you have typed is kept for this tab.
          </p>
          {props.error && <ErrorNote>{props.error}</ErrorNote>}
          <div className="row">
            <Button variant="primary" autoFocus isDisabled={props.busy} onPress={props.onStay}>
              {props.busy ? "Refreshing…" : "Stay signed in"}
            </Button>
            <Button onPress={props.onSignOut}>Sign out now</Button>
          </div>
        </Dialog>
      </Modal>
    </ModalOverlay>
  );
}

/**
 * Form text that survives an idle sign-out, an expired session or a reload, in this tab's
 * sessionStorage only (see `drafts.ts` for what may go in: text typed by staff, never data read
 * from Haven). `label` says in words what the text is for (shown in the "unsaved text" notice).
 * Returns `[value, set, clear, restored]`; `restored` is true when the value came back from an
 * earlier visit, so the form can say so. Call `clear()` once the form is submitted.
 */
export function useDraft<T>(
  key: string,
  initial: T,
  label: string,
): [T, (v: T) => void, () => void, boolean] {
  const { me } = useSession();
  const owner = me.user.id;
  const location = useLocation();
  const [restored] = useState(() => readDraft<T>(owner, key) !== null);
  const [value, setValue] = useState<T>(() => readDraft<T>(owner, key)?.value ?? initial);
  const set = (v: T) => {
    writeDraft(key, {
      owner,
      value: v,
      label,
      path: `${location.pathname}${location.search}`,
      savedAt: Date.now(),
    });
    setValue(v);
  };
  const clear = () => {
    removeDraft(key);
    setValue(initial);
  };
  return [value, set, clear, restored];
}

/**
 * "You have unsaved text" after signing back in (or a reload): what each draft was for, a link
 * back to its screen, and Discard. Shown once per mount of the signed-in shell.
 */
export function DraftNotice() {
  const { me } = useSession();
  const [items, setItems] = useState(() => listDrafts(me.user.id));
  if (items.length === 0) return null;
  return (
    <section className="note note-info draft-notice" aria-labelledby="drafts-h">
      <h2 id="drafts-h">Unsaved text was kept</h2>
      <p>
        You had started typing before you were signed out. Open the same form again to continue; the
        text is filled in.
      </p>
      <ul>
        {items.map((d) => (
          <li key={d.key}>
            <Link to={d.path}>{d.label}</Link>{" "}
            <Button
              onPress={() => {
                removeDraft(d.key);
                setItems(listDrafts(me.user.id));
              }}
            >
              Discard<span className="sr-only"> {d.label}</span>
            </Button>
          </li>
        ))}
      </ul>
      <Button onPress={() => setItems([])}>Hide</Button>
    </section>
  );
}
