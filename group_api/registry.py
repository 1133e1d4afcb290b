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


def runs_in(config: MemberConfig) -> str | None:
    """The program that runs ``config``'s variant when it is not a Python member (``"java"``), else None.

    A mode's module lists such variants in ``EXTERNAL_VARIANTS`` (name -> program); they are valid
    variants, but ``variant: all`` leaves them out (:func:`default_variants`)."""
    if config.mode not in MODES:
        raise ConfigError(f"mode: expected one of {', '.join(MODES)}, got {config.mode!r}")
    module = importlib.import_module(MODES[config.mode].partition(":")[0])
    return getattr(module, "EXTERNAL_VARIANTS", {}).get(config.variant)


def default_variants(mode: str) -> tuple[str, ...]:
    """What ``variant: all`` means: the mode's variants less those another program runs, which need
    that program installed (Java for ``curator``); a scenario names those explicitly."""
    module = importlib.import_module(MODES[mode].partition(":")[0]) if mode in MODES else None
    external = getattr(module, "EXTERNAL_VARIANTS", {})
    return tuple(v for v in variants(mode) if v not in external)


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
