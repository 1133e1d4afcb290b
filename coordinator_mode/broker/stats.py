"""The broker's per-API request and byte counters, written to ``broker_stats.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..group.errors import ErrorCode


@dataclass
class BrokerApiCounter:
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # top-level error name -> responses


@dataclass
class BrokerStats:
    """Per-API request and byte counters, and what went wrong on the wire."""

    apis: dict[str, BrokerApiCounter] = field(default_factory=dict)
    connections_total: int = 0
    connections_open: int = 0
    malformed_frames: int = 0
    unsupported_requests: int = 0

    def count(self, api: str, bytes_in: int, bytes_out: int, error_code: int = 0) -> None:
        c = self.apis.setdefault(api, BrokerApiCounter())
        c.requests += 1
        c.bytes_in += bytes_in
        c.bytes_out += bytes_out
        if error_code:
            name = (
                ErrorCode(error_code).name if error_code in ErrorCode._value2member_map_ else str(error_code)
            )
            c.errors[name] = c.errors.get(name, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "apis": {name: asdict(c) for name, c in sorted(self.apis.items())},
            "connections_total": self.connections_total,
            "connections_open": self.connections_open,
            "malformed_frames": self.malformed_frames,
            "unsupported_requests": self.unsupported_requests,
        }
