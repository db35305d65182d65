"""A policy's rules — when a key is due and when its old key may die — as both policy files and
rotator.yaml write them (rotator.yaml tunes the built-in `incident` and `offboarding`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from rotator.durations import Duration, PositiveDuration
from rotator.policy.windows import Window


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


GateSignal = Literal["consumers", "old_key_idle"]


class Cutover(_Strict):
    min_soak: Duration = timedelta(0)
    require: list[GateSignal] = []
    max_wait: PositiveDuration | None = None
    on_timeout: Literal["hold", "revoke"] = "hold"
    idle_for: PositiveDuration = timedelta(hours=1)
    """old_key_idle: how long the provider must show no use of the old key."""


class Policy(_Strict):
    max_age: PositiveDuration | None = None
    window: str | None = None
    jitter: Duration | None = None
    notify_before: PositiveDuration | None = None
    cutover: Cutover = Cutover()

    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str | None) -> str | None:
        if value is not None:
            Window.parse(value)
        return value


BUILT_IN = {
    "incident": Policy(cutover=Cutover(min_soak=timedelta(0), max_wait=timedelta(minutes=10), on_timeout="revoke")),
    "offboarding": Policy(
        cutover=Cutover(min_soak=timedelta(minutes=15), max_wait=timedelta(hours=8), on_timeout="revoke")
    ),
}
"""The operator's policies: a policy file may name them but not define them (rotator.yaml may tune them)."""
