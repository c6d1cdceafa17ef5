import { isHavenError, type RouterOutputs } from "@haven/client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, type ReactNode, useState } from "react";
import { Dialog, Heading, Modal, ModalOverlay } from "react-aria-components";
import { fieldIssues, haven, messageOf } from "../api.ts";
import { Pager, useCursorPager } from "../ops-ui.tsx";
import { useSession } from "../session.tsx";
import { Button, Empty, ErrorNote, Field, Loading } from "../ui.tsx";

type User = RouterOutputs["auth"]["users"]["list"]["items"][number];
type ApiKey = RouterOutputs["auth"]["apiKeys"]["list"][number];
type WorkforceRole = "clinician" | "staff" | "admin";
const WORKFORCE: readonly WorkforceRole[] = ["clinician", "staff", "admin"];
/** Rows per page of the account list. */
const PAGE = 20;

/** Plain-language explanations of the account procedures' FORBIDDEN/CONFLICT/NOT_FOUND answers. */
const ACCOUNT_REASONS: Record<string, string> = {
  self: "You cannot change your own account here: ask another admin (so nobody locks themselves out or lifts their own limits).",
  service_account: "This is a service account: manage it through its API key below, not as a user.",
  other_organization: "This account belongs to another organization.",
  role: "Your role may not do this.",
};

/** A sentence for an account action's failure: FORBIDDEN/CONFLICT/NOT_FOUND in words. */
function explain(err: unknown): string {
  if (isHavenError(err)) {
    const reason = err.data.reason;
    if (reason && ACCOUNT_REASONS[reason]) return ACCOUNT_REASONS[reason];
    if (err.data.code === "CONFLICT")
      return `That conflicts with an existing record: ${err.message}. Nothing was changed.`;
    if (err.data.code === "NOT_FOUND")
      return `${err.message}. It may have been removed a moment ago; the list has been refreshed.`;
    if (err.data.code === "FORBIDDEN") return `Not allowed: ${err.message}.`;
  }
  return messageOf(err);
}

function utc(t: Date | null): string {
  return t ? `${t.toISOString().slice(0, 16).replace("T", " ")} UTC` : "—";
}

/** A confirmation dialog (React Aria modal: focus trapped and restored, Escape cancels). */
function Confirm(props: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  busy: boolean;
  error: unknown;
  onConfirm(): void;
  onClose(): void;
}) {
  return (
    <ModalOverlay
      className="dialog-backdrop"
      isOpen
      isDismissable
      onOpenChange={(o) => !o && props.onClose()}
    >
      <Modal>
        <Dialog className="dialog" role="alertdialog">
          <Heading slot="title">{props.title}</Heading>
          {props.children}
          {props.error !== null && <ErrorNote>{explain(props.error)}</ErrorNote>}
          <div className="row">
            <Button variant="danger" onPress={props.onConfirm} isDisabled={props.busy}>
              {props.confirmLabel}
            </Button>
            <Button onPress={props.onClose}>Cancel</Button>
          </div>
        </Dialog>
      </Modal>
    </ModalOverlay>
  );
}

/**
 * Screen 6: users (admins only; the server enforces it, the nav hides it from other roles).
 * Invite workforce accounts, list the organization's accounts, change a role, disable/enable,
 * reset a lost authenticator, and manage the reminder cron's API keys (the secret is shown once).
 * Every change ends the target's sessions (the answer says how many); refusals (`self`, service
 * accounts, taken e-mail) are explained in words.
 */
export default function Users() {
  return (
    <section aria-labelledby="users-h">
      <h1 id="users-h">Users</h1>
      <Invite />
      <Accounts />
      <ApiKeys />
    </section>
  );
}

/**
 * Invite a clinician, staff member or admin (`auth.invitations.create`). The single-use link goes
 * only into the invitee's e-mail (the server never returns it: only its SHA-256 is stored). Below,
 * the invitations still open (`auth.invitations.list`, keyset pages), each revocable
 * (`auth.invitations.revoke`) until accepted.
 */
function Invite() {
  const qc = useQueryClient();
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<WorkforceRole>("staff");
  const [hours, setHours] = useState("72");
  const [notice, setNotice] = useState<string | null>(null);
  const pager = useCursorPager();
  const cursor = pager.cursor;
  const open = useQuery({
    queryKey: ["invitations", cursor],
    queryFn: () =>
      haven.auth.invitations.list.query({
        status: "pending",
        limit: PAGE,
        ...(cursor ? { cursor } : {}),
      }),
  });
  const refresh = () => {
    pager.reset();
    void qc.invalidateQueries({ queryKey: ["invitations"] });
  };
  const invite = useMutation({
    mutationFn: () =>
      haven.auth.invitations.create.mutate({
        role,
        email: email.trim(),
        expiresInHours: Number(hours),
      }),
    onSuccess: (r) => {
      setNotice(
        `Invitation e-mailed to ${email.trim()} as ${role}. The link in it works once, until ${utc(r.expiresAt)}.`,
      );
      setEmail("");
      refresh();
    },
  });
  const revoke = useMutation({
    mutationFn: (inv: { invitationId: string; email: string }) =>
      haven.auth.invitations.revoke.mutate({ invitationId: inv.invitationId }),
    onSuccess: (_r, inv) => {
      setNotice(`Invitation for ${inv.email} revoked: its link no longer works.`);
      refresh();
    },
    onError: refresh,
  });
  const issues = fieldIssues(invite.error);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setNotice(null);
    invite.mutate();
  };
  const items = open.data?.items ?? [];
  const next = open.data?.nextCursor ?? null;
  return (
    <section aria-labelledby="invite-h">
      <h2 id="invite-h">Invite a user</h2>
      <form className="row toolbar" onSubmit={submit} aria-labelledby="invite-h" noValidate>
        <Field
          label="E-mail"
          name="email"
          type="email"
          autoComplete="off"
          value={email}
          onChange={setEmail}
          error={issues.email}
          required
        />
        <div className="field">
          <label htmlFor="invite-role">Role</label>
          <select
            id="invite-role"
            value={role}
            onChange={(e) => setRole(e.target.value as WorkforceRole)}
          >
            {WORKFORCE.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="invite-hours">Link valid for</label>
          <select id="invite-hours" value={hours} onChange={(e) => setHours(e.target.value)}>
            <option value="24">1 day</option>
            <option value="72">3 days</option>
            <option value="168">7 days</option>
          </select>
        </div>
        <div className="field">
          <Button type="submit" variant="primary" isDisabled={invite.isPending}>
            {invite.isPending ? "Sending…" : "Send invitation"}
          </Button>
        </div>
      </form>
      {invite.isError && Object.keys(issues).length === 0 && (
        <ErrorNote>{explain(invite.error)}</ErrorNote>
      )}
      {revoke.isError && <ErrorNote>{explain(revoke.error)}</ErrorNote>}
      {notice && (
        <p className="note note-ok" role="status">
          {notice}
        </p>
      )}
      <h3 id="open-inv-h">Open invitations</h3>
      {open.isPending && <Loading what="invitations" />}
      {open.isError && <ErrorNote>{explain(open.error)}</ErrorNote>}
      {open.isSuccess && items.length === 0 && <Empty>No open invitations.</Empty>}
      {items.length > 0 && (
        <div className="grid-wrap">
          <table aria-labelledby="open-inv-h">
            <thead>
              <tr>
                <th scope="col">E-mail</th>
                <th scope="col">Role</th>
                <th scope="col">Expires</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {items.map((s) => (
                <tr key={s.invitationId}>
                  <th scope="row">{s.email}</th>
                  <td>{s.role}</td>
                  <td>{utc(s.expiresAt)}</td>
                  <td>
                    <Button
                      aria-label={`Revoke the invitation for ${s.email}`}
                      onPress={() => revoke.mutate(s)}
                      isDisabled={revoke.isPending}
                    >
                      Revoke
                    </Button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager pager={pager} nextCursor={next} label="Invitation" busy={open.isFetching} />
    </section>
  );
}

type Pending =
  | { kind: "disable" | "enable" | "resetMfa"; user: User }
  | { kind: "role"; user: User; role: WorkforceRole };

/**
 * The organization's accounts (`auth.users.list`, oldest first), a keyset page of 20 at a time
 * (the API's cursors; the list can hold every portal patient of the clinic). Role changes,
 * disable/enable and MFA reset are confirmed in a dialog first: each ends the account's sessions.
 */
function Accounts() {
  const qc = useQueryClient();
  const { me } = useSession();
  const pager = useCursorPager();
  const cursor = pager.cursor;
  const list = useQuery({
    queryKey: ["users", cursor],
    queryFn: () => haven.auth.users.list.query({ limit: PAGE, ...(cursor ? { cursor } : {}) }),
  });
  const [roles, setRoles] = useState<Record<string, WorkforceRole>>({});
  const [pending, setPending] = useState<Pending | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const act = useMutation({
    mutationFn: async (p: Pending) => {
      const userId = p.user.id;
      if (p.kind === "role") return haven.auth.users.setRole.mutate({ userId, role: p.role });
      if (p.kind === "resetMfa") return haven.auth.users.resetMfa.mutate({ userId });
      return haven.auth.users.setDisabled.mutate({ userId, disabled: p.kind === "disable" });
    },
    onSuccess: (r, p) => {
      const what =
        p.kind === "role"
          ? `${p.user.email} is now ${p.role}`
          : p.kind === "resetMfa"
            ? `${p.user.email}'s authenticator was removed; they set up a new one at next sign-in`
            : `${p.user.email} was ${p.kind === "disable" ? "disabled" : "enabled"}`;
      setNotice(
        `${what}. ${r.sessionsRevoked} session${r.sessionsRevoked === 1 ? "" : "s"} ended.`,
      );
      setPending(null);
      void qc.invalidateQueries({ queryKey: ["users"] });
    },
    onError: (err) => {
      if (isHavenError(err, "NOT_FOUND")) void qc.invalidateQueries({ queryKey: ["users"] });
    },
  });
  const open = (p: Pending) => {
    act.reset();
    setNotice(null);
    setPending(p);
  };

  const shown = list.data?.items ?? [];
  const next = list.data?.nextCursor ?? null;
  return (
    <section aria-labelledby="accounts-h">
      <h2 id="accounts-h">Accounts</h2>
      {notice && (
        <p className="note note-ok" role="status">
          {notice}
        </p>
      )}
      {list.isPending && <Loading what="accounts" />}
      {list.isError && <ErrorNote>{explain(list.error)}</ErrorNote>}
      {list.isSuccess && shown.length === 0 && <Empty>No accounts yet.</Empty>}
      {shown.length > 0 && (
        <div className="grid-wrap">
          <table className="users">
            <caption className="sr-only">Accounts</caption>
            <thead>
              <tr>
                <th scope="col">E-mail</th>
                <th scope="col">Role</th>
                <th scope="col">Status</th>
                <th scope="col">Authenticator</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((u) => {
                const self = u.id === me.user.id;
                const workforce = (WORKFORCE as readonly string[]).includes(u.role);
                const chosen = roles[u.id] ?? (u.role as WorkforceRole);
                return (
                  <tr key={u.id} data-testid={`user-${u.email}`}>
                    <th scope="row">
                      {u.email}
                      {self && " (you)"}
                    </th>
                    <td>
                      {workforce && !self ? (
                        <div className="row">
                          <select
                            aria-label={`Role of ${u.email}`}
                            value={chosen}
                            onChange={(e) =>
                              setRoles({ ...roles, [u.id]: e.target.value as WorkforceRole })
                            }
                          >
                            {WORKFORCE.map((r) => (
                              <option key={r} value={r}>
                                {r}
                              </option>
                            ))}
                          </select>
                          <Button
                            aria-label={`Change the role of ${u.email}`}
                            isDisabled={chosen === u.role}
                            onPress={() => open({ kind: "role", user: u, role: chosen })}
                          >
                            Change
                          </Button>
                        </div>
                      ) : (
                        u.role
                      )}
                    </td>
                    <td>{u.disabled ? "Disabled" : "Active"}</td>
                    <td>{u.mfaEnrolled ? "Set up" : "Not set up"}</td>
                    <td>
                      {self ? (
                        <span className="hint">Another admin manages your account</span>
                      ) : (
                        <div className="row">
                          <Button
                            aria-label={`${u.disabled ? "Enable" : "Disable"} ${u.email}`}
                            onPress={() =>
                              open({ kind: u.disabled ? "enable" : "disable", user: u })
                            }
                          >
                            {u.disabled ? "Enable" : "Disable"}
                          </Button>
                          {u.mfaEnrolled && (
                            <Button
                              aria-label={`Reset the authenticator of ${u.email}`}
                              onPress={() => open({ kind: "resetMfa", user: u })}
                            >
                              Reset MFA
                            </Button>
                          )}
                        </div>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <Pager pager={pager} nextCursor={next} label="Account" busy={list.isFetching} />
      {pending && (
        <Confirm
          title={
            pending.kind === "role"
              ? `Make ${pending.user.email} ${pending.role}?`
              : pending.kind === "resetMfa"
                ? `Reset the authenticator of ${pending.user.email}?`
                : `${pending.kind === "disable" ? "Disable" : "Enable"} ${pending.user.email}?`
          }
          confirmLabel={
            pending.kind === "role"
              ? "Change role"
              : pending.kind === "resetMfa"
                ? "Reset MFA"
                : pending.kind === "disable"
                  ? "Disable account"
                  : "Enable account"
          }
          busy={act.isPending}
          error={act.error}
          onConfirm={() => act.mutate(pending)}
          onClose={() => setPending(null)}
        >
          <p>
            {pending.kind === "disable"
              ? "They are signed out everywhere at once and cannot sign in until enabled again."
              : pending.kind === "resetMfa"
                ? "Their authenticator and recovery codes are removed (a lost phone). They are signed out and set up a new authenticator at the next sign-in."
                : pending.kind === "enable"
                  ? "They can sign in again with their password and authenticator."
                  : "Their sessions end; they sign in again with the new role's access."}
          </p>
        </Confirm>
      )}
    </section>
  );
}

/**
 * API keys for the reminder cron (`auth.apiKeys.*`): create (the secret is shown exactly once,
 * with a copy button; only its SHA-256 is kept), list (prefix, scopes, last use) and revoke.
 */
function ApiKeys() {
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ["apiKeys"], queryFn: () => haven.auth.apiKeys.list.query() });
  const [name, setName] = useState("");
  const [secret, setSecret] = useState<{ key: string; name: string } | null>(null);
  const [copied, setCopied] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const create = useMutation({
    mutationFn: () => haven.auth.apiKeys.create.mutate({ name, scopes: ["reminders"] }),
    onSuccess: (r) => {
      setSecret({ key: r.key, name: r.info.name });
      setCopied(null);
      setName("");
      void qc.invalidateQueries({ queryKey: ["apiKeys"] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => haven.auth.apiKeys.revoke.mutate({ keyId: id }),
    onSuccess: () => {
      setRevoking(null);
      void qc.invalidateQueries({ queryKey: ["apiKeys"] });
    },
  });
  const issues = fieldIssues(create.error);
  const copy = async () => {
    if (!secret) return;
    try {
      await navigator.clipboard.writeText(secret.key);
      setCopied("Copied to the clipboard.");
    } catch {
      setCopied("The browser did not allow copying: select the key and copy it by hand.");
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setSecret(null);
    create.mutate();
  };
  return (
    <section aria-labelledby="keys-h">
      <h2 id="keys-h">API keys</h2>
      <p className="hint">
        Keys let the reminder cron call Haven as a service account (scope: reminders).
      </p>
      <form className="row toolbar" onSubmit={submit} aria-label="Create an API key" noValidate>
        <Field
          label="Key name"
          name="name"
          value={name}
          onChange={setName}
          error={issues.name}
          description="What uses it, e.g. reminder cron on host A"
          required
        />
        <div className="field">
          <Button type="submit" variant="primary" isDisabled={create.isPending}>
            {create.isPending ? "Creating…" : "Create API key"}
          </Button>
        </div>
      </form>
      {create.isError && Object.keys(issues).length === 0 && (
        <ErrorNote>{explain(create.error)}</ErrorNote>
      )}
      {secret && (
        <section className="note note-info secret" aria-labelledby="secret-h" data-testid="new-key">
          <h3 id="secret-h">New key “{secret.name}”: copy it now</h3>
          <p role="alert">
            This is the only time the key is shown. Haven keeps only a fingerprint of it: if you
            lose it, revoke it and create another.
          </p>
          <p>
            <code className="key" data-testid="api-key-secret">
              {secret.key}
            </code>
          </p>
          <div className="row">
            <Button variant="primary" onPress={() => void copy()}>
              Copy key
            </Button>
            <Button onPress={() => setSecret(null)}>I have stored it — hide the key</Button>
          </div>
          {copied && <p role="status">{copied}</p>}
        </section>
      )}
      {list.isPending && <Loading what="API keys" />}
      {list.isError && <ErrorNote>{explain(list.error)}</ErrorNote>}
      {list.isSuccess && list.data.length === 0 && <Empty>No API keys yet.</Empty>}
      {list.isSuccess && list.data.length > 0 && (
        <div className="grid-wrap">
          <table>
            <caption className="sr-only">API keys</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Key starts</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">Status</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {list.data.map((k) => (
                <tr key={k.id} data-testid={`key-${k.name}`}>
                  <th scope="row">{k.name}</th>
                  <td>
                    <code>{k.prefix}…</code>
                  </td>
                  <td>{utc(k.createdAt)}</td>
                  <td>{utc(k.lastUsedAt)}</td>
                  <td>
                    {k.revokedAt
                      ? `Revoked ${utc(k.revokedAt)}`
                      : k.expiresAt && k.expiresAt.getTime() <= Date.now()
                        ? "Expired"
                        : "Active"}
                  </td>
                  <td>
                    {!k.revokedAt && (
                      <Button
                        aria-label={`Revoke the key ${k.name}`}
                        onPress={() => {
                          revoke.reset();
                          setRevoking(k);
                        }}
                      >
                        Revoke
                      </Button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {revoking && (
        <Confirm
          title={`Revoke the key ${revoking.name}?`}
          confirmLabel="Revoke key"
          busy={revoke.isPending}
          error={revoke.error}
          onConfirm={() => revoke.mutate(revoking.id)}
          onClose={() => setRevoking(null)}
        >
          <p>It stops working at once: the reminder cron using it is refused.</p>
        </Confirm>
      )}
    </section>
  );
}
