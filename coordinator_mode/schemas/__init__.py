"""Kafka message classes that kafka-python 3.0 lacks, generated the way it generates its own.

kafka-python 3 builds each ``kafka.protocol`` class from Kafka's JSON message schema when the class
is defined (``JsonSchemaData`` reads ``<ClassName>.json``; ``load_json=`` names the package holding
it). kafka-python 3.0.12 knows the KIP-848 API keys (``ApiKey.ConsumerGroupHeartbeat`` = 68,
``ConsumerGroupDescribe`` = 69) but ships no schema for them, so the schemas here are Kafka's own
(``clients/src/main/resources/common/message/``, ConsumerGroupHeartbeat v0-1 and
ConsumerGroupDescribe v0 as in Kafka 4.0), unedited, and the classes below are generated from them
by kafka-python's machinery: no field is written by hand. Defining a response class registers it
with kafka-python's parser, so our client decodes these responses like any other.
"""

from __future__ import annotations

from kafka.protocol.api_message import ApiMessage


class ConsumerGroupHeartbeatRequest(ApiMessage, load_json=__name__):
    pass


class ConsumerGroupHeartbeatResponse(ApiMessage, load_json=__name__):
    pass


class ConsumerGroupDescribeRequest(ApiMessage, load_json=__name__):
    pass


class ConsumerGroupDescribeResponse(ApiMessage, load_json=__name__):
    pass


__all__ = [
    "ConsumerGroupDescribeRequest",
    "ConsumerGroupDescribeResponse",
    "ConsumerGroupHeartbeatRequest",
    "ConsumerGroupHeartbeatResponse",
]
