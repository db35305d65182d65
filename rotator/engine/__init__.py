"""The rotation engine: the only package that acts on the lifecycle (`rotator.lifecycle` defines it).

Each state and the code that advances a rotation out of it (`api_steps.HANDLERS`):

    requested            api_steps.py start         prove the old key is this secret's; ask or create
    creating             api_steps.py create        create rotator-<id> at the provider, stage it
    awaiting_new_key     handoff.py   wait_for_key  the operator makes the key; `supply` checks and stages it
    staged               api_steps.py probe         the new key works (ping/account call)
    probed               api_steps.py promote       the new key becomes current in the store
    promoted             api_steps.py enter_cutover   the reload hook; the gate's clock starts
    cutover_wait         api_steps.py cutover       the gate (gate.py) with its signals (gate_signals.py)
    revoking             api_steps.py revoke        revoke the old key at the provider
    awaiting_revocation  handoff.py   wait_for_revocation  the operator revokes it; done once refused
    verifying            api_steps.py verify        the old key is refused: completed
    rolling_back         api_steps.py roll_back     before promotion only: revoke the new key, failed

`rotation.py` (the Engine) runs the step of a rotation's state, keeps what the step records until
it is written in one fenced transaction, and turns an error into a retry, a rollback or a hold.
Around them: `steps.py` (Target, Step and the StepContext the step modules use), `proof.py` (how
an old key is shown to be the secret's before it may be revoked), `interventions.py` (a person's
release and abort), `runner.py` (leases, fencing and turns: the one way anything advances).
"""
