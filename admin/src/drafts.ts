/**
 * Unsaved form text ("drafts") kept for this browser tab only, so an idle sign-out or an expired
 * session does not silently lose what a staff member was typing.
 *
 * Where it lives, and why: `sessionStorage` (this tab, this origin; gone when the tab closes),
 * never `localStorage` (which persists on a shared front-desk machine). Only free text typed by
 * the staff member goes in (a visit or cancellation reason, an acknowledgement note), tagged with
 * the signed-in user's id so another person signing in on the same tab never sees it
 * ({@link keepOnlyDraftsOf}); patient choices, names and anything read from Haven stay in memory.
 * A deliberate "Sign out" clears every draft ({@link clearAllDrafts}); submitting a form clears
 * its own. If the browser refuses storage (privacy mode, quota), drafts fall back to memory.
 */

const PREFIX = "haven.draft.";

/** One saved draft as stored (JSON) under `haven.draft.<key>`. */
export interface StoredDraft<T = unknown> {
  /** `users.id` of the account that typed it. */
  owner: string;
  value: T;
  /** What the text is for, in words ("Visit reason, booking Tue 10:30"). No patient data. */
  label: string;
  /** The panel path (below `/admin`) where the form lives, to go back to it. */
  path: string;
  /** Epoch ms (UTC) of the last keystroke saved. */
  savedAt: number;
}

const memory = new Map<string, string>();

function store(): Pick<Storage, "getItem" | "setItem" | "removeItem" | "key" | "length"> {
  try {
    const s = window.sessionStorage;
    const probe = `${PREFIX}probe`;
    s.setItem(probe, "1");
    s.removeItem(probe);
    return s;
  } catch {
    return {
      getItem: (k) => memory.get(k) ?? null,
      setItem: (k, v) => void memory.set(k, v),
      removeItem: (k) => void memory.delete(k),
      key: (i) => [...memory.keys()][i] ?? null,
      get length() {
        return memory.size;
      },
    };
  }
}

function keys(): string[] {
  const s = store();
  const out: string[] = [];
  for (let i = 0; i < s.length; i++) {
    const k = s.key(i);
    if (k?.startsWith(PREFIX)) out.push(k);
  }
  return out;
}

function parse(raw: string | null): StoredDraft | null {
  if (!raw) return null;
  try {
    const v = JSON.parse(raw) as StoredDraft;
    return typeof v.owner === "string" && typeof v.label === "string" ? v : null;
  } catch {
    return null;
  }
}

/** The draft `key` of `owner`, or null (none, someone else's, unreadable). */
export function readDraft<T>(owner: string, key: string): StoredDraft<T> | null {
  const d = parse(store().getItem(PREFIX + key));
  return d && d.owner === owner ? (d as StoredDraft<T>) : null;
}

/** Save (or, for an empty string, drop) the draft `key`. */
export function writeDraft<T>(key: string, draft: StoredDraft<T>): void {
  if (draft.value === "" || draft.value === null || draft.value === undefined) {
    removeDraft(key);
    return;
  }
  try {
    store().setItem(PREFIX + key, JSON.stringify(draft));
  } catch {
    memory.set(PREFIX + key, JSON.stringify(draft));
  }
}

/** Drop the draft `key` (its form was submitted or discarded). */
export function removeDraft(key: string): void {
  store().removeItem(PREFIX + key);
  memory.delete(PREFIX + key);
}

/** Every draft of `owner`, newest first, with its key. */
export function listDrafts(owner: string): (StoredDraft & { key: string })[] {
  return keys()
    .map((k) => ({ key: k.slice(PREFIX.length), d: parse(store().getItem(k)) }))
    .filter((x): x is { key: string; d: StoredDraft } => x.d?.owner === owner)
    .map((x) => ({ ...x.d, key: x.key }))
    .sort((a, b) => b.savedAt - a.savedAt);
}

/** Remove drafts typed by anyone but `owner` (a different person signed in on this tab). */
export function keepOnlyDraftsOf(owner: string): void {
  for (const k of keys()) {
    if (parse(store().getItem(k))?.owner !== owner) store().removeItem(k);
  }
}

/** Remove every draft (deliberate sign-out). */
export function clearAllDrafts(): void {
  for (const k of keys()) store().removeItem(k);
  memory.clear();
}
