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
    "coordinator": "coordinator_mode.client.variants:create_member",
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


def external_variants(mode: str) -> dict[str, str]:
    """A mode module's ``EXTERNAL_VARIANTS``: variants another program runs (name -> program, e.g.
    ``"java"``). They are valid variants, but not Python members, and ``variant: all`` leaves them out."""
    variants(mode)  # validates the mode
    module = importlib.import_module(MODES[mode].partition(":")[0])
    return dict(getattr(module, "EXTERNAL_VARIANTS", {}))


def runs_in(config: MemberConfig) -> str | None:
    """The program that runs ``config``'s variant when it is not a Python member, else None."""
    return external_variants(config.mode).get(config.variant or "")


def default_variants(mode: str) -> tuple[str, ...]:
    """What ``variant: all`` means: the mode's variants less those another program runs, which need
    that program installed (Java for zk's ``curator``); a scenario names those explicitly."""
    external = external_variants(mode)
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
    program = runs_in(config)
    if program is not None:
        raise ConfigError(
            f"variant: {config.variant} runs on {program}, not in this process: start it with "
            "rebalance-lab member, which runs it there"
        )
    return factory(config.mode)(config, sink)
