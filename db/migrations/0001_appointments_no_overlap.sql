-- Double booking is impossible at the database level (ARCHITECTURE §2): two active appointments of
-- one practitioner may not overlap. drizzle-kit has no builder for EXCLUDE, hence this custom migration.
CREATE EXTENSION IF NOT EXISTS btree_gist;
--> statement-breakpoint
ALTER TABLE "appointments" ADD CONSTRAINT "appointments_no_overlap"
  EXCLUDE USING gist ("practitioner_id" WITH =, tstzrange("starts_at", "ends_at", '[)') WITH &&)
  WHERE ("status" IN ('booked', 'checked_in'));
