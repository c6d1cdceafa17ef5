-- A patient cannot be in two places at once (issue 13): two active appointments of one patient may
-- not overlap, whichever practitioners they are with. The booking service checks this first
-- (`patient_double_booked`), but that check is racy under concurrency; this constraint is the
-- final guard, as `appointments_no_overlap` (0001) is for practitioners. btree_gist is from 0001.
-- Custom migration: drizzle-kit has no builder for EXCLUDE.
ALTER TABLE "appointments" ADD CONSTRAINT "appointments_patient_no_overlap"
  EXCLUDE USING gist ("patient_id" WITH =, tstzrange("starts_at", "ends_at", '[)') WITH &&)
  WHERE ("status" IN ('booked', 'checked_in'));
