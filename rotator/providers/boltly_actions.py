"""`rotator login INSTANCE`: Boltly's own command (plugin/actions.py), light to load: the adapter is
imported only when the command runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rotator.plugin.actions import Action, Ask

if TYPE_CHECKING:
    from rotator.plugin.registry import Context


def _login(settings: Any, ctx: Context, ask: Ask) -> str:
    from rotator.providers.boltly import session_of

    session = session_of(settings, ctx)
    session.login(ask(f"password for {session.email}"))
    return f"logged in as {session.email}; refresh token saved to {session.keeper.where}"


LOGIN = Action(
    name="login",
    provider="boltly",
    help="Log in to a Boltly INSTANCE again (password from stdin or a hidden prompt); save its refresh token.\n\n"
    "For when its refresh token was lost or revoked: the next rotation of its secrets can then refresh again.",
    run=_login,
)
