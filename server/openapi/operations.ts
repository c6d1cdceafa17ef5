/**
 * The curated REST subset (issue 11, ADR 0010): which tRPC procedure each REST operation calls.
 * The REST layer adds nothing of its own: input and output schemas are the procedures' zod
 * schemas, and every call goes through the same procedure (roles, MFA, audit, throttles).
 */
export interface RestOperation {
  /** OpenAPI `operationId` (stable: generated clients name their methods after it). */
  operationId: string;
  method: "get" | "post";
  /** Fastify-style path under `/api/v1`, `{name}` for path parameters. */
  path: string;
  /** Dotted tRPC procedure path. */
  procedure: string;
  tag: string;
  summary: string;
  /** Input fields taken from the path (the rest come from the query string (GET) or JSON body). */
  pathParams: readonly string[];
  /** False for sign-in: the only operations callable without a session. */
  authenticated: boolean;
}

export const REST_PREFIX = "/api/v1";

export const REST_OPERATIONS: readonly RestOperation[] = [
  {
    operationId: "signIn",
    method: "post",
    path: "/auth/sign-in",
    procedure: "auth.login",
    tag: "auth",
    summary:
      "Sign in with e-mail and password. Returns a session token (send as Bearer) and sets the HttpOnly session cookie. Clinician/staff/admin sessions must then pass MFA.",
    pathParams: [],
    authenticated: false,
  },
  {
    operationId: "verifyMfa",
    method: "post",
    path: "/auth/mfa/verify",
    procedure: "auth.mfa.verify",
    tag: "auth",
    summary:
      "Pass MFA for the current session with a TOTP code (RFC 6238) or a recovery code. Returns the verified session's new token.",
    pathParams: [],
    authenticated: true,
  },
  {
    operationId: "getPatient",
    method: "get",
    path: "/patients/{patientId}",
    procedure: "patients.get",
    tag: "patients",
    summary: "A patient's demographics and newest clinical entries (minimum necessary per role).",
    pathParams: ["patientId"],
    authenticated: true,
  },
  {
    // POST: search terms are PHI and must not sit in URLs (ADR 0002).
    operationId: "searchPatients",
    method: "post",
    path: "/patients/search",
    procedure: "patients.search",
    tag: "patients",
    summary: "Find patients of the caller's organization by MRN, or by family name + birth date.",
    pathParams: [],
    authenticated: true,
  },
  {
    operationId: "listSlots",
    method: "get",
    path: "/practitioners/{practitionerId}/slots",
    procedure: "appointments.slots",
    tag: "appointments",
    summary: "Free slots of a practitioner between two instants.",
    pathParams: ["practitionerId"],
    authenticated: true,
  },
  {
    operationId: "bookAppointment",
    method: "post",
    path: "/appointments",
    procedure: "appointments.book",
    tag: "appointments",
    summary: "Book a slot.",
    pathParams: [],
    authenticated: true,
  },
  {
    operationId: "rescheduleAppointment",
    method: "post",
    path: "/appointments/{appointmentId}/reschedule",
    procedure: "appointments.reschedule",
    tag: "appointments",
    summary: "Move an appointment (optimistic concurrency on `version`).",
    pathParams: ["appointmentId"],
    authenticated: true,
  },
  {
    operationId: "cancelAppointment",
    method: "post",
    path: "/appointments/{appointmentId}/cancel",
    procedure: "appointments.cancel",
    tag: "appointments",
    summary: "Cancel an appointment with a reason (optimistic concurrency on `version`).",
    pathParams: ["appointmentId"],
    authenticated: true,
  },
  {
    operationId: "listPatientAppointments",
    method: "get",
    path: "/patients/{patientId}/appointments",
    procedure: "appointments.listForPatient",
    tag: "appointments",
    summary: "A patient's appointments, newest first, keyset-paginated.",
    pathParams: ["patientId"],
    authenticated: true,
  },
  {
    operationId: "listPatientAuditEvents",
    method: "get",
    path: "/patients/{patientId}/audit-events",
    procedure: "audit.forPatient",
    tag: "audit",
    summary: "Who accessed a patient's record (HIPAA accounting of disclosures).",
    pathParams: ["patientId"],
    authenticated: true,
  },
  {
    operationId: "claimDueReminders",
    method: "post",
    path: "/reminders/claim",
    procedure: "reminders.claimDue",
    tag: "reminders",
    summary: "Lease due reminders for delivery (service API keys with the reminders scope).",
    pathParams: [],
    authenticated: true,
  },
  {
    operationId: "completeReminder",
    method: "post",
    path: "/reminders/{id}/complete",
    procedure: "reminders.complete",
    tag: "reminders",
    summary: "Report a leased reminder's delivery outcome.",
    pathParams: ["id"],
    authenticated: true,
  },
  {
    operationId: "completeReminders",
    method: "post",
    path: "/reminders/complete",
    procedure: "reminders.completeMany",
    tag: "reminders",
    summary:
      "Report up to 500 leased reminders' outcomes in one call; each is applied or refused (stale claim, unknown id) on its own.",
    pathParams: [],
    authenticated: true,
  },
];
