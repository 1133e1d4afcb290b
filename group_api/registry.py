"""Maps a mode name to its implementation by import string, so nothing imports a mode statically."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .config import ConfigError, MemberConfig
from .events import EventSink
from .member import GroupMember

#: mode name -> "module:attribute" of a factory ``(config, sink) -> GroupMember`` that also has a
#: ``VARIANTS`` tuple (first one is the default) on its module.
MODES: dict[str, str] = {
    "zk": "zk_mode.member:create_member",
    "coordinator": "coordinator_mode.client.member:create_member",
}


def resolve(target: str) -> Any:
    """The object an import string ``"module:attribute"`` names, importing the module now."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def factory(mode: str) -> Callable[[MemberConfig, EventSink], GroupMember]:
    if mode not in MODES:
        raise ConfigError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    return resolve(MODES[mode])


def variants(mode: str) -> tuple[str, ...]:
    """The mode's variant names; the first is its default."""
    if mode not in MODES:
        raise ConfigError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    module_name = MODES[mode].partition(":")[0]
    return tuple(importlib.import_module(module_name).VARIANTS)


def create_member(config: MemberConfig, sink: EventSink) -> GroupMember:
    """Build the member that ``config.mode`` and ``config.variant`` name (validated here)."""
    names = variants(config.mode)
    if config.variant is None:
        config = config.with_(variant=names[0])
    elif config.variant not in names:
        raise ConfigError(
            f"variant: mode {config.mode!r} has variants {', '.join(names)}, got {config.variant!r}"
        )
    return factory(config.mode)(config, sink)
