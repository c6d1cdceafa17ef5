import type { RouterOutputs } from "@haven/client";
import { useMutation } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { fieldIssues, haven, messageOf } from "./api.ts";
import { Button, Empty, ErrorNote, Field } from "./ui.tsx";

export type Found = RouterOutputs["patients"]["search"][number];

/**
 * Patient search by MRN, or by family name + birth date (exact match through the server's blind
 * indexes; ADR 0002 keeps the inputs out of URLs). Shows the matches and hands the chosen one to
 * `onPick`. Field messages come from the server's zod paths.
 */
export function PatientSearch(props: {
  onPick(p: Found): void;
  pickLabel: string;
  idPrefix: string;
}) {
  const [mode, setMode] = useState<"mrn" | "name">("mrn");
  const [mrn, setMrn] = useState("");
  const [family, setFamily] = useState("");
  const [birthDate, setBirthDate] = useState("");
  const search = useMutation({
    mutationFn: () => haven.patients.search.query(mode === "mrn" ? { mrn } : { family, birthDate }),
  });
  const issues = fieldIssues(search.error);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    search.mutate();
  };
  return (
    <div className="patient-search">
      <form onSubmit={submit} aria-label="Find a patient" noValidate>
        <fieldset className="row">
          <legend>Search by</legend>
          <label>
            <input
              type="radio"
              name={`${props.idPrefix}-mode`}
              checked={mode === "mrn"}
              onChange={() => setMode("mrn")}
            />{" "}
            MRN
          </label>
          <label>
            <input
              type="radio"
              name={`${props.idPrefix}-mode`}
              checked={mode === "name"}
              onChange={() => setMode("name")}
            />{" "}
            Family name and birth date
          </label>
        </fieldset>
        {mode === "mrn" ? (
          <Field label="MRN" name="mrn" value={mrn} onChange={setMrn} error={issues.mrn} />
        ) : (
          <div className="row">
            <Field
              label="Family name"
              name="family"
              value={family}
              onChange={setFamily}
              error={issues.family}
            />
            <Field
              label="Birth date"
              name="birthDate"
              type="date"
              value={birthDate}
              onChange={setBirthDate}
              error={issues.birthDate}
            />
          </div>
        )}
        <Button type="submit" variant="primary" isDisabled={search.isPending}>
          {search.isPending ? "Searching…" : "Search"}
        </Button>
      </form>
      {search.isError && Object.keys(issues).length === 0 && (
        <ErrorNote>{messageOf(search.error)}</ErrorNote>
      )}
      {search.isSuccess && search.data.length === 0 && (
        <Empty>No patient matches. Check the spelling and the birth date, or search by MRN.</Empty>
      )}
      {search.isSuccess && search.data.length > 0 && (
        <table>
          <caption className="sr-only">Matching patients</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Birth date</th>
              <th scope="col">MRN</th>
              <th scope="col">
                <span className="sr-only">Action</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {search.data.map((p) => (
              <tr key={p.id}>
                <td>
                  {p.name.family}, {p.name.given.join(" ")}
                </td>
                <td>{p.birthDate ?? "—"}</td>
                <td>{p.mrn ?? "—"}</td>
                <td>
                  <Button onPress={() => props.onPick(p)}>
                    {props.pickLabel}
                    <span className="sr-only">
                      {" "}
                      {p.name.family}, {p.name.given.join(" ")}
                    </span>
                  </Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
