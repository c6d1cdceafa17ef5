/**
 * The application role and its grants (what migration 0005_audit_append_only sets up), as one
 * statement a restore re-applies: `pg_dump --no-owner --no-privileges` carries no roles and no
 * ACLs, and roles are cluster-wide, so a fresh cluster has neither. Without this the
 * audit tables' append-only protection by grants is gone after a restore (the trigger remains).
 * HIPAA 45 CFR 164.312(b) audit controls, 164.312(c)(1) integrity.
 */
export const APP_ROLE_SQL = `
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'haven_app') THEN
    BEGIN
      CREATE ROLE haven_app NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
  END IF;
END
$$`;

/** Grants of `haven_app` on the restored schema: full DML except UPDATE/DELETE on audit tables. */
export const APP_GRANTS_SQL = `
GRANT USAGE ON SCHEMA public TO haven_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO haven_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO haven_app;
REVOKE UPDATE, DELETE, TRUNCATE ON "audit_events", "audit_chain" FROM haven_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO haven_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO haven_app`;

/** Checks that the restored database still refuses audit rewrites by the app role. */
export const APPEND_ONLY_CHECK_SQL = `
SELECT has_table_privilege('haven_app', 'audit_events', 'INSERT') AS can_insert,
       has_table_privilege('haven_app', 'audit_events', 'UPDATE') AS can_update,
       has_table_privilege('haven_app', 'audit_events', 'DELETE') AS can_delete,
       (SELECT count(*)::int FROM pg_trigger WHERE tgname IN
         ('audit_events_append_only', 'audit_events_no_truncate',
          'audit_chain_append_only', 'audit_chain_no_truncate') AND NOT tgisinternal) AS triggers`;
