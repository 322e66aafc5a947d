"""RabbitMQ: topology, confirmed publishing and acknowledged consuming."""

from mailmerger_shared.broker.consumer import Consumer, ConsumerStalled, Handler, messages_of
from mailmerger_shared.broker.publisher import Publisher, PublishFailed, UnroutableMessage
from mailmerger_shared.broker.topology import QUEUES, QueueSpec

__all__ = [
    "QUEUES",
    "Consumer",
    "ConsumerStalled",
    "Handler",
    "PublishFailed",
    "Publisher",
    "QueueSpec",
    "UnroutableMessage",
    "messages_of",
]
