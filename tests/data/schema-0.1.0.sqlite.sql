-- The state schema of rotator 0.1.0 (before migrations existed), as its create_all made it on SQLite.
CREATE TABLE rotations (
	id VARCHAR(36) NOT NULL, 
	secret VARCHAR(200) NOT NULL, 
	provider VARCHAR(100) NOT NULL, 
	policy VARCHAR(100) NOT NULL, 
	state VARCHAR(30) NOT NULL, 
	"trigger" VARCHAR(30) NOT NULL, 
	reason TEXT NOT NULL, 
	started_by VARCHAR(200) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	waiting_for TEXT NOT NULL, 
	waiting_since DATETIME, 
	old_version VARCHAR(100), 
	old_key_id VARCHAR(200), 
	old_fingerprint VARCHAR(40), 
	new_key_id VARCHAR(200), 
	new_fingerprint VARCHAR(40), 
	create_started_at DATETIME, 
	staged_at DATETIME, 
	promoted_at DATETIME, 
	revoke_started_at DATETIME, 
	revoked_at DATETIME, 
	finished_at DATETIME, 
	old_identity JSON, 
	gate_state JSON, 
	held_reason TEXT, 
	held_since DATETIME, 
	failed_reason TEXT, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_rotations_secret ON rotations (secret);
CREATE UNIQUE INDEX one_active_rotation_per_secret ON rotations (secret) WHERE state NOT IN ('completed', 'failed');
CREATE INDEX ix_rotations_next_attempt_at ON rotations (next_attempt_at);
CREATE TABLE audit_events (
	id INTEGER NOT NULL, 
	rotation_id VARCHAR(36), 
	secret VARCHAR(200) NOT NULL, 
	at DATETIME NOT NULL, 
	actor VARCHAR(200) NOT NULL, 
	event VARCHAR(60) NOT NULL, 
	from_state VARCHAR(30), 
	to_state VARCHAR(30), 
	detail JSON NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_audit_events_secret ON audit_events (secret);
CREATE INDEX ix_audit_events_rotation_id ON audit_events (rotation_id);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TABLE leases (
	secret VARCHAR(200) NOT NULL, 
	owner VARCHAR(200) NOT NULL, 
	expires_at DATETIME NOT NULL, 
	PRIMARY KEY (secret)
);
CREATE TABLE step_progress (
	rotation_id VARCHAR(36) NOT NULL, 
	step VARCHAR(30) NOT NULL, 
	started_at DATETIME NOT NULL, 
	attempts INTEGER NOT NULL, 
	last_error TEXT, 
	next_attempt_at DATETIME, 
	finished_at DATETIME, 
	PRIMARY KEY (rotation_id, step), 
	FOREIGN KEY(rotation_id) REFERENCES rotations (id)
);
