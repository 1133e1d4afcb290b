"""The coordinator mode's variants, and the factory the registry calls (``group_api.registry.MODES``).

``classic`` (the default) and ``java`` are :mod:`.member`'s; ``consumer``, KIP-848's consumer group
protocol, is :mod:`.membership`'s, which builds on :mod:`.member`: the factory lives here so that
neither imports the other both ways.
"""

from __future__ import annotations

from group_api import ConfigError, EventSink, GroupMember, MemberConfig

from .member import EXTERNAL_VARIANTS, CoordinatorMember
from .member import VARIANTS as CLASSIC_VARIANTS
from .membership import ConsumerProtocolMember

#: Variants of this mode; the first is the default.
VARIANTS = (*CLASSIC_VARIANTS, "consumer")


def create_member(config: MemberConfig, sink: EventSink) -> GroupMember:
    """The registry's factory for the coordinator mode."""
    if config.variant not in (None, *VARIANTS):
        raise ConfigError(f"variant: coordinator mode has {', '.join(VARIANTS)}, got {config.variant!r}")
    if config.variant == "consumer":
        return ConsumerProtocolMember(config, sink)
    return CoordinatorMember(config, sink)


__all__ = ["EXTERNAL_VARIANTS", "VARIANTS", "create_member"]
