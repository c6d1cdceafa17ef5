// Compile-time checks of @haven/client's published types, from outside the repository. Nothing
// here runs: `tsc --noEmit` (strict, skipLibCheck false) must pass, and it only passes when every
// `@ts-expect-error` below is needed (TS2578 otherwise) and no procedure input or output is `any`.

import {
  createHavenClient,
  type HavenClient,
  isHavenError,
  type RouterInputs,
  type RouterOutputs,
  signIn,
} from "@haven/client";
import type { FhirResource } from "fhir/r4.js";

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

/** Depth counter for the walk (FHIR types are recursive). */
type Prev = [never, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
type Leaf = string | number | boolean | bigint | symbol | null | undefined | Date;

/**
 * Every path inside `T` whose type is `any` or `unknown` (both mean "untyped" to a caller). FHIR
 * bodies stop the walk at `FhirResource`: that type is the standard's R4 definition (@types/fhir).
 */
type UntypedPaths<T, P extends string, D extends number = 10> = [D] extends [never]
  ? never
  : 0 extends 1 & T
    ? `${P} (any)`
    : unknown extends T
      ? `${P} (unknown)`
      : T extends Leaf
        ? never
        : T extends FhirResource
          ? never
          : T extends readonly (infer E)[]
            ? UntypedPaths<E, `${P}[]`, Prev[D]>
            : T extends AsyncIterable<infer E>
              ? UntypedPaths<E, `${P}<event>`, Prev[D]>
              : T extends object
                ? { [K in keyof T & string]-?: UntypedPaths<T[K], `${P}.${K}`, Prev[D]> }[keyof T &
                    string]
                : never;

// (c) no `any` (or `unknown`) anywhere in any procedure's input or output.
export type NoUntypedInputs = Expect<Equal<UntypedPaths<RouterInputs, "input">, never>>;
export type NoUntypedOutputs = Expect<Equal<UntypedPaths<RouterOutputs, "output">, never>>;
// The walk itself bites: it finds an `any` when there is one.
export type WalkFindsAny = Expect<Equal<UntypedPaths<{ a: { b: any } }, "x">, "x.a.b (any)">>;

// Spot checks that the types are the real ones, not merely "not any".
export type LoginHasToken = Expect<Equal<RouterOutputs["auth"]["login"]["token"], string>>;
export type InstantsAreDates = Expect<
  Equal<RouterOutputs["appointments"]["book"]["startsAt"], Date>
>;
export type FhirBodies = Expect<
  Equal<NonNullable<RouterOutputs["patients"]["get"]["entries"][number]["resource"]>, FhirResource>
>;

export async function negativeChecks(haven: HavenClient): Promise<void> {
  // (b) a wrong input type: patientId is a UUID string.
  // @ts-expect-error patientId must be a string
  await haven.patients.get.query({ patientId: 42 });

  // (b) a missing procedure.
  // @ts-expect-error there is no patients.nope
  await haven.patients.nope.query();

  // (b) a wrong output field.
  const record = await haven.patients.get.query({
    patientId: "0190a0a0-0000-7000-8000-000000000000",
  });
  // @ts-expect-error demographics has `name`, not `fullName`
  void record.demographics.fullName;

  // (b) a mutation is not a query.
  // @ts-expect-error appointments.book is a mutation
  await haven.appointments.book.query({});

  // FHIR narrowing works on the typed body.
  const body = record.entries[0]?.resource;
  if (body?.resourceType === "Condition") {
    const text: string | undefined = body.code?.text;
    void text;
  }
}

export async function errorNarrowing(): Promise<void> {
  try {
    await createHavenClient({ url: "http://127.0.0.1:1" }).auth.me.query();
  } catch (e) {
    if (isHavenError(e, "TOO_MANY_REQUESTS")) {
      const code: "TOO_MANY_REQUESTS" = e.data.code;
      const wait: number | null = e.data.retryAfterSeconds;
      void [code, wait];
    } else if (isHavenError(e)) {
      const issues = e.data.issues?.map((i) => `${i.path}: ${i.message}`);
      const reason: string | null = e.data.reason;
      void [issues, reason];
    }
  }
}

export async function signInShapes(): Promise<void> {
  const r = await signIn({ url: "http://127.0.0.1:1", email: "a@b.c", password: "x" });
  if (r.status === "mfa_required") {
    const done = await r.verify({ totp: "123456" });
    void done.client.auth.me.query();
  } else if (r.status === "signed_in") {
    void r.client.patients.search.query({ mrn: "MRN-1" });
  } else {
    void r.client.auth.mfa.enroll.mutate();
  }
}
