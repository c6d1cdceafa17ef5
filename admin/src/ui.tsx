import type { ReactNode } from "react";
import {
  Button as AriaButton,
  type ButtonProps,
  FieldError,
  Input,
  Label,
  Text,
  TextField,
} from "react-aria-components";

/**
 * A labelled text field (React Aria): the label is tied to the input, the server's zod message for
 * this field's path is shown under it and announced (`aria-invalid` + described-by).
 */
export function Field(props: {
  label: string;
  name: string;
  value: string;
  onChange(v: string): void;
  error?: string | undefined;
  type?: "text" | "email" | "password" | "date" | "search" | "datetime-local";
  autoComplete?: string;
  inputMode?: "numeric" | "text";
  description?: string;
  required?: boolean;
  autoFocus?: boolean;
}) {
  return (
    <TextField
      className="field"
      name={props.name}
      value={props.value}
      onChange={props.onChange}
      isInvalid={Boolean(props.error)}
      isRequired={props.required ?? false}
      type={props.type ?? "text"}
      {...(props.autoComplete ? { autoComplete: props.autoComplete } : {})}
      validationBehavior="aria"
      autoFocus={props.autoFocus ?? false}
    >
      <Label>{props.label}</Label>
      <Input {...(props.inputMode ? { inputMode: props.inputMode } : {})} />
      {props.description && <Text slot="description">{props.description}</Text>}
      <FieldError className="field-error">{props.error}</FieldError>
    </TextField>
  );
}

/** A React Aria button (press events, keyboard, visible focus ring via CSS `[data-focus-visible]`). */
export function Button(props: ButtonProps & { variant?: "primary" | "danger" | "plain" }) {
  const { variant = "plain", className, ...rest } = props;
  return <AriaButton {...rest} className={`btn btn-${variant} ${className ?? ""}`} />;
}

/** A failed load or action, announced to screen readers. */
export function ErrorNote(props: { children: ReactNode }) {
  return (
    <p className="note note-error" role="alert">
      {props.children}
    </p>
  );
}

/** A loading placeholder, announced politely. */
export function Loading(props: { what?: string }) {
  return (
    <p className="note" role="status">
      Loading{props.what ? ` ${props.what}` : ""}…
    </p>
  );
}

/** An empty list. */
export function Empty(props: { children: ReactNode }) {
  return <p className="note note-empty">{props.children}</p>;
}
