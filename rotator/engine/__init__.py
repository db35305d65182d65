"""The rotation engine: the only package that acts on the lifecycle (`rotator.lifecycle` defines it).

Each state and the code that advances a rotation out of it (`Engine._handlers`):

    requested            rotation.py  _start        prove the old key is this secret's; ask or create
    creating             rotation.py  _create       create rotator-<id> at the provider, stage it
    awaiting_new_key     handoff.py   wait_for_key  the operator makes the key; `supply` checks and stages it
    staged               rotation.py  _probe        the new key works (ping/account call)
    probed               rotation.py  _promote      the new key becomes current in the store
    promoted             rotation.py  _enter_cutover  the reload hook; the gate's clock starts
    cutover_wait         rotation.py  _cutover      the gate (gate.py) with its signals (gate_signals.py)
    revoking             rotation.py  _revoke       revoke the old key at the provider
    awaiting_revocation  handoff.py   wait_for_revocation  the operator revokes it; done once refused
    verifying            rotation.py  _verify       the old key is refused: completed
    rolling_back         rotation.py  _roll_back    before promotion only: revoke the new key, failed

Around them: `steps.py` (Target, Step and the StepContext the step modules use), `proof.py` (how
an old key is shown to be the secret's before it may be revoked), `interventions.py` (a person's
release and abort), `runner.py` (leases, fencing and turns: the one way anything advances).
"""
