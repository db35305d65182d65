-- Two roles for rotator's state database on PostgreSQL (run as a superuser or the database owner).
--
--   rotator_owner    owns the schema; only `rotator db upgrade` connects as it (migrations).
--   rotator_runtime  what the daemon and the commands connect as: it may read and write
--                    rotations, leases and step progress, and only read and append to the
--                    audit trail — never UPDATE, DELETE, TRUNCATE, ALTER or disable its triggers
--                    (only a table's owner can do those).
--
-- Passwords are set apart (ALTER ROLE … PASSWORD, or certificate auth); never in this file.
-- In order:
--   1. as a superuser: the DO block below (the roles), then
--      CREATE DATABASE rotator OWNER rotator_owner;
--   2. the migrations, as rotator_owner: ROTATOR_STATE__URL=postgresql+psycopg://rotator_owner@…/rotator rotator db upgrade
--   3. connected to that database as rotator_owner: this whole file again, for the GRANTs.
-- Repeat step 3 after an upgrade that adds a table.

DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rotator_owner') THEN CREATE ROLE rotator_owner LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rotator_runtime') THEN CREATE ROLE rotator_runtime LOGIN; END IF;
END $$;

GRANT USAGE ON SCHEMA public TO rotator_runtime;
GRANT SELECT ON alembic_version TO rotator_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON rotations, step_progress, leases TO rotator_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_outbox, leftover_keys TO rotator_runtime;
GRANT SELECT, INSERT ON audit_events TO rotator_runtime;
GRANT USAGE ON SEQUENCE audit_events_id_seq, notification_outbox_id_seq, leftover_keys_id_seq TO rotator_runtime;
