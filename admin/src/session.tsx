import type { RouterOutputs } from "@haven/client";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createContext, type ReactNode, useCallback, useContext, useEffect, useState } from "react";
import { haven, isSignedOut } from "./api.ts";

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

/**
 * Decides between the sign-in flow and the panel. Signs out after the server's idle timeout of no
 * keyboard/pointer activity (45 CFR 164.312(a)(2)(iii)) and says so; a form's unsaved text is kept
 * in memory by {@link useDraft} so it is there again after signing back in.
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
  useEffect(() => {
    if (!verified || idleMinutes === null) return;
    let timer = window.setTimeout(() => void signOut("idle"), idleMinutes * 60_000);
    const reset = () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(() => void signOut("idle"), idleMinutes * 60_000);
    };
    for (const e of ACTIVITY) window.addEventListener(e, reset, { passive: true });
    return () => {
      window.clearTimeout(timer);
      for (const e of ACTIVITY) window.removeEventListener(e, reset);
    };
  }, [verified, idleMinutes, signOut]);

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
    </SessionContext.Provider>
  );
}

const drafts = new Map<string, unknown>();

/**
 * Form state that survives a sign-out (idle timeout) and signing back in, in this tab's memory
 * only: never in localStorage/sessionStorage, so no patient data rests in the browser and a
 * reload drops it. `clear()` once the form is submitted.
 */
export function useDraft<T>(key: string, initial: T): [T, (v: T) => void, () => void] {
  const [value, setValue] = useState<T>(() => (drafts.has(key) ? (drafts.get(key) as T) : initial));
  const set = (v: T) => {
    drafts.set(key, v);
    setValue(v);
  };
  const clear = () => {
    drafts.delete(key);
    setValue(initial);
  };
  return [value, set, clear];
}
