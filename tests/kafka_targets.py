"""Skipping the real-Kafka tests, with the reason, where ``make setup`` could not build their jars."""

from __future__ import annotations

import pytest

from bench.services.kafka import unavailable
from bench.services.kafka_config import KafkaTarget


def skip_unless_built(target: KafkaTarget) -> None:
    """Skip the calling test (or fixture) unless ``target``'s jars and the Jolokia agent are built."""
    reason = unavailable(target.name)
    if reason is not None:
        pytest.skip(f"Kafka {target.name}: {reason}")
