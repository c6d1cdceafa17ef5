import pino, { type DestinationStream, type Logger } from "pino";

/**
 * Paths redacted from every log line. Haven logs ids, never a user object, name, e-mail, token or
 * any PHI (ARCHITECTURE §7); redaction is the safety net, not the policy.
 */
export const REDACT_PATHS = [
  "password",
  "*.password",
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "cookie",
  "*.cookie",
  "req.headers.authorization",
  "req.headers.cookie",
  "res.headers['set-cookie']",
  "input",
  "*.input",
  "demographics",
  "*.demographics",
  "email",
  "*.email",
  "name",
  "*.name",
  "birthDate",
  "*.birthDate",
  "phone",
  "*.phone",
  "ssn",
  "*.ssn",
  "mrn",
  "*.mrn",
  // Free text and FHIR bodies that may hold PHI (break-the-glass reasons, review notes, visit
  // reasons, clinical resources), and MFA material.
  "address",
  "*.address",
  "given",
  "*.given",
  "family",
  "*.family",
  "reason",
  "*.reason",
  "note",
  "*.note",
  "resource",
  "*.resource",
  "body",
  "*.body",
  "secret",
  "*.secret",
  "totpSecret",
  "*.totpSecret",
];

/** Create the process logger (JSON lines). `destination` lets tests capture output. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "haven" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      // Errors are logged by name and SQLSTATE only: driver messages can quote row values.
      serializers: { err: serializeError },
    },
    destination,
  );
}

/** The `at …` frames of a stack (at most 7), without the message lines that precede them. */
export function stackFrames(stack: string | undefined): string | undefined {
  if (!stack) return undefined;
  const frames = stack
    .split("\n")
    .filter((line) => /^\s+at /.test(line))
    .slice(0, 7);
  return frames.length > 0 ? frames.join("\n") : undefined;
}

/** Error serializer that keeps type, code and stack but drops messages that may quote data. */
export function serializeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { type: typeof err };
  const code = (err as { code?: unknown }).code;
  const cause = (err as { cause?: unknown }).cause;
  return {
    type: err.name,
    code: typeof code === "string" ? code : undefined,
    // Frames only: a stack begins with the message, and Drizzle's "Failed query: … params: …" or a
    // driver's 'invalid input syntax …: "<value>"' spans several lines of it.
    stack: stackFrames(err.stack),
    cause: cause instanceof Error ? serializeError(cause) : undefined,
  };
}

export type { Logger };
