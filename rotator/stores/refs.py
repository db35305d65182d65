"""`store:` in a policy file: one installed store type's reference, `{aws: {secret_id: ...}}` or
`{vault: {path: ...}}`, the model built from the installed store types (rotator.plugin.registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from pydantic import create_model, model_validator

from rotator.plugin import registry
from rotator.plugin.settings import Lean, StoreRefPart


class StoreRefBase(Lean):
    """Exactly one of the fields (one per installed store type) is set."""

    @model_validator(mode="after")
    def _exactly_one(self) -> StoreRefBase:
        if len(self._chosen()) != 1:
            shapes = " or ".join(f"{{{name}: {{...}}}}" for name in type(self).model_fields)
            raise ValueError(f"name exactly one store: {shapes}")
        return self

    def _chosen(self) -> list[tuple[str, StoreRefPart]]:
        # the fields' values, read from __dict__: pydantic's model_fields costs microseconds a call
        return [(name, value) for name, value in vars(self).items() if value is not None and name[0] != "_"]

    def chosen(self) -> tuple[str, StoreRefPart]:
        """The store type named and its reference, found in one pass (read for every secret of a fleet)."""
        for name, value in vars(self).items():
            if value is not None and name[0] != "_":
                return name, value
        raise AssertionError("a validated StoreRef names one store")

    @property
    def kind(self) -> str:
        """The store type named: `aws`, `vault`, …"""
        return self.chosen()[0]

    @property
    def part(self) -> StoreRefPart:
        return self.chosen()[1]

    @property
    def instance(self) -> str:
        """The store instance in rotator.yaml."""
        return self.part.instance

    @property
    def location(self) -> str:
        """The secret's place in its store: an AWS secret id, or `<mount>:<path>` in Vault."""
        return self.part.location


def _model() -> type[StoreRefBase]:
    fields: dict[str, Any] = {name: (t.ref | None, None) for name, t in registry.stores().items()}
    return cast(type[StoreRefBase], create_model("StoreRef", __base__=StoreRefBase, **fields))


if TYPE_CHECKING:
    StoreRef = StoreRefBase
else:
    StoreRef = _model()
