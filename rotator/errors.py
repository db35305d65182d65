"""Every error rotator raises, in one tree.

    RotatorError                       base; `temporary` says whether trying again later can help
    ├── InputError                     bad configuration or policy files; carries file:line problems
    ├── LeaseHeld                      another process advances this secret right now
    │   ├── LeaseLost                  this process's lease was taken: its write was refused (fencing)
    │   └── StateBusy                  the state database cut a wait short (a lock held too long elsewhere)
    ├── SchemaMismatch                 the state database's schema is older or newer than this rotator's
    ├── NotYet                         temporary: something outside has not happened yet (a new key accepted)
    ├── ProviderError                  a provider answered with an error (status, vendor code)
    │   ├── KeyRefused                 401: the key is unknown, revoked or expired
    │   ├── PermissionDenied           403: the key authenticates but lacks a permission
    │   ├── KeyNotFound                404 on a key id
    │   ├── UnexpectedResponse         the answer broke a documented shape or one of our assumptions
    │   └── ProviderUnavailable        temporary: 429, 5xx, timeouts, connection errors
    │       └── CreateOutcomeUnknown   a create may or may not have happened; list before creating again
    ├── StoreError
    │   ├── StoreConflict              someone else changed the secret since the rotation read it
    │   ├── StorePermissionError       the store refused an operation (names path and capability)
    │   └── StoreUnavailable           temporary: throttling, 5xx, sealed, unreachable
    └── RotationError                  the engine cannot go on with this rotation as it stands
        ├── KeyNotProven               the stored key cannot be shown to be the key `key_id` names
        ├── KeyRejected                the operator's key failed a check; the rotation waits for a good one
        └── ActiveRotationExists       the secret has a rotation in flight already (carries it)

Messages never contain key material: they name keys by id or fingerprint only.
"""

from __future__ import annotations


class RotatorError(Exception):
    """Base of all rotator errors."""

    temporary: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class InputError(RotatorError):
    """Configuration or policy input is invalid; `problems` lists each one with its place."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class LeaseHeld(RotatorError):
    temporary = True


class LeaseLost(LeaseHeld):
    """This process no longer holds the lease it acts under (it expired, another took it): stop at
    once and touch nothing more — the write that found out was not made."""


class StateBusy(LeaseHeld):
    """The state database cut a wait short (lock_timeout, statement_timeout, an idle transaction
    ended): someone held what this needed for too long. Nothing was written; try again shortly."""


class StateUnavailable(RotatorError):
    """The state database could not be opened or reached (state.url); nothing was done."""


class SchemaMismatch(RotatorError):
    """The state database is at another schema revision; the message says what to run."""


class NotYet(RotatorError):
    """Something outside has not happened yet (a new key not accepted yet); look again later."""

    temporary = True


class RotationError(RotatorError):
    pass


class KeyNotProven(RotationError):
    """rotator will not revoke `key_id`: nothing shows the stored key is the key it names."""


class KeyRejected(RotationError):
    """An operator's key failed a check; the rotation keeps waiting for a good one."""


class ActiveRotationExists(RotationError):
    def __init__(self, *, secret: str, rotation_id: str, state: str) -> None:
        super().__init__(f"secret {secret!r} already has rotation {rotation_id} in state {state}")
        self.rotation_id = rotation_id


class ProviderError(RotatorError):
    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        detail = f"{provider}: {message}"
        if status is not None:
            detail += f" (HTTP {status}{', ' + code if code else ''})"
        super().__init__(detail, retry_after=retry_after)
        self.provider = provider
        self.status = status
        self.code = code
        self.reason = message
        """The vendor's (or the client's) own words, without the provider and status around them."""


class KeyRefused(ProviderError):
    pass


class PermissionDenied(ProviderError):
    pass


class KeyNotFound(ProviderError):
    pass


class UnexpectedResponse(ProviderError):
    pass


class ProviderUnavailable(ProviderError):
    temporary = True


class CreateOutcomeUnknown(ProviderUnavailable):
    pass


class Stopped(RotatorError):
    """A request waiting for a rate limit's slot was never sent: the process is stopping. The
    step is tried again at once by whoever advances the rotation next."""

    temporary = True


class StoreError(RotatorError):
    pass


class StoreConflict(StoreError):
    pass


class StorePermissionError(StoreError):
    pass


class StoreUnavailable(StoreError):
    temporary = True
