"""Checks of scenario values: each takes a raw YAML value and returns it typed, or raises
:class:`Invalid` saying what was expected (the caller adds the file and field). :class:`Param` is one
action parameter: its check, default and whether it is required (the actions table,
:mod:`bench.experiment.actions`, lists each action's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# -- validation ------------------------------------------------------------------------------------


class Invalid(Exception):
    """Raised by checkers with what was expected; the caller adds the file and field."""


def fmt_value(value: Any) -> str:
    return repr(value) if not isinstance(value, dict | list) else type(value).__name__


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid(f"expected a positive integer, got {fmt_value(value)}")
    return value


def non_negative_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(f"expected an integer >= 0, got {fmt_value(value)}")
    return value


def duration(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise Invalid(f"expected a number of seconds >= 0, got {fmt_value(value)}")
    return float(value)


def positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise Invalid(f"expected a positive number, got {fmt_value(value)}")
    return float(value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {fmt_value(value)}")
    return value


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected a non-empty string, got {fmt_value(value)}")
    return value


def choice(enum: type[StrEnum]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            return enum(value)
        except ValueError:
            raise Invalid(f"expected one of {', '.join(enum)}, got {fmt_value(value)}") from None

    return check


@dataclass(frozen=True)
class Param:
    check: Callable[[Any], Any]
    default: Any = None
    required: bool = False


# Parameters that depend on the rest of the scenario (group index, server index, link target) are
# checked again in _check_step_context.
GROUP = Param(lambda v: v if v is None else non_negative_int(v))
COUNT1 = Param(positive_int, 1)
LINK = Param(text, "all")
