"""What commands do over many secrets or the whole state: bulk rotations (incident, offboard), the
leaked-key lookup, reconcile, preflight checks, and the read models of status and plan."""
