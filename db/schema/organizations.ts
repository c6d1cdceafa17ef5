import { pgTable, text } from "drizzle-orm/pg-core";
import { createdAt, id, updatedAt } from "./columns.ts";

/** A clinic (FHIR Organization). Its name and address are business data, not PHI. */
export const organizations = pgTable("organizations", {
  id: id(),
  fhirId: text("fhir_id").unique(),
  name: text("name").notNull(),
  /** IANA time zone the clinic's local times are shown in. */
  timezone: text("timezone").notNull().default("America/New_York"),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});
