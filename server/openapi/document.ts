import { TRPC_ERROR_CODES_BY_KEY } from "@trpc/server/rpc";
import { type ZodType, z } from "zod";
import { REST_OPERATIONS, REST_PREFIX, type RestOperation } from "./operations.ts";

/** A tRPC procedure as the REST layer sees it: its type and its zod input/output schemas. */
export interface ProcedureSchemas {
  type: "query" | "mutation" | "subscription";
  input: ZodType;
  output: ZodType;
}

type JsonSchema = Record<string, unknown>;

/**
 * The input and output schemas of a procedure of `router` (tRPC v11 keeps them on `_def`).
 * @throws Error when the procedure does not exist or declares no single input / explicit output
 */
export function procedureSchemas(router: unknown, path: string): ProcedureSchemas {
  const procedures = (router as { _def: { procedures: Record<string, unknown> } })._def.procedures;
  const def = (
    procedures[path] as
      | { _def: { type: ProcedureSchemas["type"]; inputs: ZodType[]; output?: ZodType } }
      | undefined
  )?._def;
  if (!def) throw new Error(`REST operation maps to unknown procedure ${path}`);
  const [input, ...more] = def.inputs;
  if (!input || more.length > 0 || !def.output)
    throw new Error(`${path} needs exactly one .input() and an .output() for REST`);
  return { type: def.type, input, output: def.output };
}

/**
 * zod → JSON Schema 2020-12 (OpenAPI 3.1's dialect). Instants (`z.date()`) become
 * `{ type: "string", format: "date-time" }` (RFC 3339 / ISO 8601); FHIR bodies, which zod
 * checks with custom refinements, become `{}` plus the description.
 */
export function toJsonSchema(schema: ZodType, io: "input" | "output"): JsonSchema {
  const out = z.toJSONSchema(schema, {
    io,
    target: "draft-2020-12",
    unrepresentable: "any",
    override: (ctx) => {
      const def = (ctx.zodSchema as unknown as { _zod: { def: { type: string } } })._zod.def;
      if (def.type === "date") {
        ctx.jsonSchema.type = "string";
        ctx.jsonSchema.format = "date-time";
      }
    },
  }) as JsonSchema;
  delete out.$schema;
  return out;
}

/** The tRPC error codes a REST caller can see, with their HTTP statuses. */
const ERROR_CODES = Object.keys(TRPC_ERROR_CODES_BY_KEY);

/**
 * The one error shape of every REST failure (ADR 0010): the same fields as `data` in tRPC errors
 * (`describeError`), so the same codes and reasons. 4xx/5xx statuses follow tRPC's mapping.
 */
export const ERROR_SCHEMA: JsonSchema = {
  type: "object",
  required: ["error"],
  additionalProperties: false,
  properties: {
    error: {
      type: "object",
      required: ["code", "message", "httpStatus", "requestId", "issues", "reason"],
      properties: {
        code: { type: "string", enum: ERROR_CODES, description: "tRPC error code" },
        message: { type: "string", description: "Human-readable; never PHI, SQL or a stack." },
        httpStatus: { type: "integer" },
        requestId: { type: ["string", "null"], description: "Quote it when reporting a 500." },
        issues: {
          type: ["array", "null"],
          description: "BAD_REQUEST input errors, one per field (at most 50).",
          items: {
            type: "object",
            required: ["path", "message"],
            properties: { path: { type: "string" }, message: { type: "string" } },
          },
        },
        reason: {
          type: ["string", "null"],
          description: "Machine-readable domain reason (e.g. `slot_taken`, `mfa_required`).",
        },
        retryAfterSeconds: {
          type: ["integer", "null"],
          description: "On 429 and 503: seconds to wait (also sent as `Retry-After`).",
        },
      },
    },
  },
};

const ERROR_RESPONSES: Record<string, string> = {
  "400": "Invalid input (`BAD_REQUEST`, with `issues`).",
  "401": "No or expired session (`UNAUTHORIZED`).",
  "403": "Role, MFA (`reason: mfa_required`), row rule or CSRF refusal (`FORBIDDEN`).",
  "404": "Not found, or not visible to the caller (`NOT_FOUND`).",
  "409": "Stale `version` or taken slot (`CONFLICT`).",
  "429": "Throttled (`TOO_MANY_REQUESTS`, `retryAfterSeconds`).",
  "503": "Database unavailable (`SERVICE_UNAVAILABLE`).",
};

/** Path in OpenAPI form (`{id}`) and Fastify form (`:id`). */
export function fastifyPath(op: RestOperation): string {
  return `${REST_PREFIX}${op.path.replace(/\{(\w+)\}/g, ":$1")}`;
}

function operationObject(router: unknown, op: RestOperation): JsonSchema {
  const { input, output } = procedureSchemas(router, op.procedure);
  const inputSchema = toJsonSchema(input, "input");
  const properties = (inputSchema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((inputSchema.required as string[] | undefined) ?? []);
  const parameters: JsonSchema[] = op.pathParams.map((name) => ({
    name,
    in: "path",
    required: true,
    schema: properties[name] ?? { type: "string" },
  }));
  let requestBody: JsonSchema | undefined;
  if (op.method === "get") {
    for (const [name, schema] of Object.entries(properties)) {
      if (op.pathParams.includes(name)) continue;
      parameters.push({ name, in: "query", required: required.has(name), schema });
    }
  } else {
    let body = inputSchema;
    if (op.pathParams.length > 0) {
      const rest = Object.fromEntries(
        Object.entries(properties).filter(([k]) => !op.pathParams.includes(k)),
      );
      body = {
        ...inputSchema,
        properties: rest,
        required: [...required].filter((k) => !op.pathParams.includes(k)),
      };
    }
    requestBody = { required: true, content: { "application/json": { schema: body } } };
  }
  const responses: JsonSchema = {
    "200": {
      description: "OK",
      content: { "application/json": { schema: toJsonSchema(output, "output") } },
    },
  };
  for (const [status, description] of Object.entries(ERROR_RESPONSES)) {
    if (!op.authenticated && (status === "401" || status === "403")) continue;
    responses[status] = {
      description,
      content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
    };
  }
  return {
    operationId: op.operationId,
    tags: [op.tag],
    summary: op.summary,
    description: `Calls the tRPC procedure \`${op.procedure}\` (same roles, audit and throttles).`,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(requestBody ? { requestBody } : {}),
    responses,
    security: op.authenticated ? [{ bearer: [] }, { cookie: [] }] : [],
  };
}

/**
 * The curated operations whose procedure `router` actually has. The app router has all of them
 * (`openapi.test.ts` checks every one is in the document); a server built on a smaller router
 * (tests that mount a few procedures) exposes only the REST routes it can serve.
 */
export function restOperationsOf(router: unknown): readonly RestOperation[] {
  const procedures = (router as { _def: { procedures: Record<string, unknown> } })._def.procedures;
  return REST_OPERATIONS.filter((op) => op.procedure in procedures);
}

/**
 * The OpenAPI 3.1 document of the curated REST subset, generated from the procedures' zod
 * schemas (so it cannot drift from what tRPC validates).
 * @param router the app router (`appRouter`)
 * @param serverUrl optional base URL for `servers`
 */
export function buildOpenApiDocument(router: unknown, serverUrl?: string): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const op of restOperationsOf(router)) {
    const key = `${REST_PREFIX}${op.path}`;
    paths[key] ??= {};
    paths[key][op.method] = operationObject(router, op);
  }
  return {
    openapi: "3.1.1",
    info: {
      title: "Haven REST API",
      version: "1.0.0",
      description:
        "A curated REST subset of Haven's tRPC API for non-TypeScript clients. Plain JSON; instants are ISO 8601 strings (UTC). Authenticate with `Authorization: Bearer <token>` (from sign-in), or in a browser with the session cookie plus an `Origin` header of an allowed origin on POST. Clinician, staff and admin sessions must pass MFA (`verifyMfa`) before other calls.",
      license: { name: "UNLICENSED", identifier: "UNLICENSED" },
    },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : { servers: [{ url: "/" }] }),
    tags: [
      { name: "auth", description: "Sign-in and MFA" },
      { name: "patients", description: "Patient records (PHI; every read is audited)" },
      { name: "appointments", description: "Slots and booking" },
      { name: "audit", description: "Accounting of disclosures" },
      { name: "reminders", description: "Reminder delivery for service API keys" },
    ],
    paths,
    components: {
      schemas: { Error: ERROR_SCHEMA },
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "Session token or service API key",
        },
        cookie: { type: "apiKey", in: "cookie", name: "haven_session" },
      },
    },
  };
}

type Def = {
  type: string;
  shape?: Record<string, ZodType>;
  innerType?: ZodType;
  in?: ZodType;
  element?: ZodType;
  options?: ZodType[];
};
const defOf = (s: ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/**
 * Turn JSON values into what the zod input expects: ISO-8601 strings into `Date` where the
 * schema has `z.date()`, and (for query strings) numeric strings into numbers and `"true"`/
 * `"false"` into booleans. Anything that does not fit is left alone for zod to reject with a
 * field issue (BAD_REQUEST), never guessed.
 */
export function reviveInput(schema: ZodType, value: unknown, fromQuery: boolean): unknown {
  const def = defOf(schema);
  switch (def.type) {
    case "date":
      return typeof value === "string" && !Number.isNaN(Date.parse(value))
        ? new Date(value)
        : value;
    case "number":
    case "int":
      return fromQuery &&
        typeof value === "string" &&
        value.trim() !== "" &&
        !Number.isNaN(Number(value))
        ? Number(value)
        : value;
    case "boolean":
      return fromQuery && (value === "true" || value === "false") ? value === "true" : value;
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "readonly":
    case "catch":
    case "nonoptional":
      return def.innerType ? reviveInput(def.innerType, value, fromQuery) : value;
    case "pipe":
      return def.in ? reviveInput(def.in, value, fromQuery) : value;
    case "array":
      if (fromQuery && typeof value === "string") value = [value];
      return Array.isArray(value) && def.element
        ? value.map((v) => reviveInput(def.element as ZodType, v, fromQuery))
        : value;
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
      const shape = def.shape ?? {};
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [
          k,
          shape[k] ? reviveInput(shape[k] as ZodType, v, fromQuery) : v,
        ]),
      );
    }
    case "union": {
      // Revive with the first option that accepts the revived value; else leave as is.
      for (const option of def.options ?? []) {
        const revived = reviveInput(option, value, fromQuery);
        if (option.safeParse(revived).success) return revived;
      }
      return value;
    }
    default:
      return value;
  }
}
