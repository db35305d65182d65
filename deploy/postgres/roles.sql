-- Two roles for rotator's state database on PostgreSQL (run as a superuser or the database owner).
--
--   rotator_owner    owns the schema; only `rotator db upgrade` connects as it (migrations).
--   rotator_runtime  what the daemon and the commands connect as: it may read and write
--                    rotations, leases and step progress, and only read and append to the
--                    audit trail — never UPDATE, DELETE, TRUNCATE, ALTER or disable its triggers
--                    (only a table's owner can do those).
--
-- Passwords are set apart (ALTER ROLE … PASSWORD, or certificate auth); never in this file.
-- Run the migrations as rotator_owner first (`ROTATOR_STATE__URL=…rotator_owner… rotator db upgrade`),
-- then this file's GRANTs; repeat the GRANTs after an upgrade that adds a table.

DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rotator_owner') THEN CREATE ROLE rotator_owner LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rotator_runtime') THEN CREATE ROLE rotator_runtime LOGIN; END IF;
END $$;

GRANT USAGE ON SCHEMA public TO rotator_runtime;
GRANT SELECT ON alembic_version TO rotator_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON rotations, step_progress, leases TO rotator_runtime;
GRANT SELECT, INSERT ON audit_events TO rotator_runtime;
GRANT USAGE ON SEQUENCE audit_events_id_seq TO rotator_runtime;
