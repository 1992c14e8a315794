"""Config defaults written once, in the dataclasses: a config section backed by a dataclass gets all
its fields (with their defaults) from the class, so YAML files hold only what differs and every field
can still be overridden on the command line (`section.field=value`, no `+`)."""
from __future__ import annotations

import dataclasses
from typing import Iterable


def register_dataclass_defaults(options: Iterable[tuple[str, str, type]], target: bool = True) -> None:
    """Store each (group, option name, dataclass) as a Hydra config option: every field at its default,
    and `_target_` unless `target=False` (for sections built with `cls(**section)`, not instantiate).
    A config then picks it in its defaults list: `- <group>: <option name>`, or `- <group>/<option name>`
    before `- <group>: <preset>` so that a preset file of the group holds only what differs. An empty
    group stores the option at the top level. Call this before Hydra composes that config."""
    from hydra.core.config_store import ConfigStore
    store = ConfigStore.instance()
    for group, name, cls in options:
        head = {"_target_": f"{cls.__module__}.{cls.__qualname__}"} if target else {}
        store.store(group=group or None, name=name, node={**head, **dataclasses.asdict(cls())})
