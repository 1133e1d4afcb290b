"""Skipping the real-Kafka tests, with the reason, where ``make setup`` could not build their jars."""

from __future__ import annotations

import pytest

from bench.services.java import java_module
from bench.services.kafka_config import KafkaTarget


def skip_unless_built(target: KafkaTarget) -> None:
    """Skip the calling test (or fixture) unless ``target``'s jars and the Jolokia agent are built."""
    for name in (target.module, "jolokia"):
        module = java_module(name)
        if not module.available:
            pytest.skip(f"Kafka {target.name}: {module.reason}")
