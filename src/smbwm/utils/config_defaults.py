"""Config defaults written once, in the dataclasses: a config section backed by a dataclass gets all
its fields (with their defaults) from the class, so YAML files hold only what differs and every field
can still be overridden on the command line (`section.field=value`, no `+`)."""
from __future__ import annotations

import dataclasses
from typing import Iterable


def register_dataclass_defaults(options: Iterable[tuple[str, str, type]]) -> None:
    """Store each (group, option name, dataclass) as a Hydra config option: `_target_` plus every field
    at its default. A config then picks it in its defaults list (`- <group>: <option name>`). Call this
    before Hydra composes that config."""
    from hydra.core.config_store import ConfigStore
    store = ConfigStore.instance()
    for group, name, cls in options:
        target = f"{cls.__module__}.{cls.__qualname__}"
        store.store(group=group, name=name, node={"_target_": target, **dataclasses.asdict(cls())})
