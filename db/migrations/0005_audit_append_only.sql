-- Audit tables are append-only (HIPAA 45 CFR 164.312(b) audit controls, 164.312(c)(1) integrity).
-- 1. A trigger refuses UPDATE, DELETE and TRUNCATE on audit_events and audit_chain for every role,
--    the owner included; only a superuser who deliberately disables the trigger can change a row,
--    and `npm run audit -- verify` then reports the broken link.
-- 2. The application's database role `haven_app` (NOLOGIN; the server's login role is made a member
--    of it, see docs/key-management.md) may SELECT and INSERT audit rows, never UPDATE or DELETE
--    them; it keeps full DML on every other table, now and in later migrations.
-- The role is created only when it does not exist yet (roles are cluster-wide) and only when the
-- migrating role may create roles; otherwise the grants are skipped with a NOTICE and the trigger
-- still protects the rows.
CREATE OR REPLACE FUNCTION haven_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'haven: % is append-only; % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
--> statement-breakpoint
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON "audit_events"
  FOR EACH ROW EXECUTE FUNCTION haven_audit_append_only();
--> statement-breakpoint
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON "audit_events"
  FOR EACH STATEMENT EXECUTE FUNCTION haven_audit_append_only();
--> statement-breakpoint
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON "audit_chain"
  FOR EACH ROW EXECUTE FUNCTION haven_audit_append_only();
--> statement-breakpoint
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON "audit_chain"
  FOR EACH STATEMENT EXECUTE FUNCTION haven_audit_append_only();
--> statement-breakpoint
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'haven_app') THEN
    BEGIN
      CREATE ROLE haven_app NOLOGIN;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN NULL; -- created concurrently by another database's migration
      WHEN insufficient_privilege THEN
        RAISE NOTICE 'haven: cannot create role haven_app (no CREATEROLE); create it and re-run the grants in 0005_audit_append_only.sql';
    END;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'haven_app') THEN
    GRANT USAGE ON SCHEMA public TO haven_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO haven_app;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO haven_app;
    REVOKE UPDATE, DELETE, TRUNCATE ON "audit_events", "audit_chain" FROM haven_app;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO haven_app;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO haven_app;
  END IF;
END
$$;
