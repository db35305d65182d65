"""Persisted rotations, step progress, leases and the audit trail (SQLite or PostgreSQL)."""
