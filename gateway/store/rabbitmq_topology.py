"""The RabbitMQ objects the scale-out queue uses, their names and their declaration.

Every name starts with a configurable prefix (``amqp_prefix``, default ``gateway``), so
several deployments (or test runs) can share one broker without seeing each other::

    {p}.deliveries              direct exchange; routing key = recipient partner id
      └─ {p}.deliveries.{partner}   quorum queue per partner: what its workers consume
    {p}.park.{ms}ms             fanout exchange + quorum queue with x-message-ttl = ms,
                                dead-lettering (at-least-once) back to {p}.deliveries
                                under the message's own routing key (its partner)
    {p}.dead                    direct exchange; routing key = recipient partner id
      └─ {p}.dead.{partner}     quorum queue: dead letters, last error in headers

The park ladder holds deliveries that must wait: a retry (its time comes from
``gateway.delivery.backoff``, chosen by the worker), or a delivery queued behind an older
open delivery of the same (recipient, child). A delivery waiting ``d`` seconds is parked in
the longest level not longer than ``d`` (or the shortest level), and parked again for the
rest when it comes back early: a handful of fixed-TTL queues serve any delay, and no queue
ever holds messages with mixed TTLs (RabbitMQ only expires the head of a queue).

A message carries only ids (body: the delivery id; headers: the message id): payloads,
states and attempts stay in PostgreSQL, encrypted. Declarations are idempotent, so every
gateway instance declares what it uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pamqp.common import FieldTable

PARK_LEVELS_MS: tuple[int, ...] = (250, 1_000, 5_000, 30_000, 300_000, 3_600_000)
"""The park queues' TTLs, shortest first."""

_QUORUM: FieldTable = {"x-queue-type": "quorum"}


@dataclass(frozen=True, slots=True)
class Topology:
    """Names under one prefix (see the module docstring)."""

    prefix: str = "gateway"

    @property
    def deliveries_exchange(self) -> str:
        return f"{self.prefix}.deliveries"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    def partner_queue(self, recipient: str) -> str:
        return f"{self.prefix}.deliveries.{recipient}"

    def dead_queue(self, recipient: str) -> str:
        return f"{self.prefix}.dead.{recipient}"

    def park(self, level_ms: int) -> str:
        return f"{self.prefix}.park.{level_ms}ms"


def park_level(delay_seconds: float) -> int:
    """The park level (ms) for a wait of ``delay_seconds``: the longest not longer than the
    wait, so a parked delivery never comes back late by more than the shortest level."""
    wanted = delay_seconds * 1000
    fitting = [level for level in PARK_LEVELS_MS if level <= wanted]
    return fitting[-1] if fitting else PARK_LEVELS_MS[0]


@dataclass(frozen=True, slots=True)
class Exchanges:
    deliveries: AbstractExchange
    dead: AbstractExchange
    park: dict[int, AbstractExchange]


async def declare_shared(channel: AbstractChannel, topology: Topology) -> Exchanges:
    """Declare the exchanges and the park ladder (durable; idempotent)."""
    deliveries = await channel.declare_exchange(
        topology.deliveries_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead = await channel.declare_exchange(topology.dead_exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    park: dict[int, AbstractExchange] = {}
    for level in PARK_LEVELS_MS:
        exchange = await channel.declare_exchange(
            topology.park(level), aio_pika.ExchangeType.FANOUT, durable=True
        )
        queue = await channel.declare_queue(
            topology.park(level),
            durable=True,
            arguments={
                **_QUORUM,
                "x-message-ttl": level,
                "x-dead-letter-exchange": topology.deliveries_exchange,
                # At-least-once dead-lettering: a parked delivery is never dropped on its way
                # back (it needs reject-publish overflow).
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        await queue.bind(exchange)
        park[level] = exchange
    return Exchanges(deliveries, dead, park)


async def declare_partner(channel: AbstractChannel, topology: Topology, recipient: str) -> AbstractQueue:
    """Declare a partner's delivery queue and dead-letter queue; returns the delivery queue."""
    queue = await channel.declare_queue(topology.partner_queue(recipient), durable=True, arguments=_QUORUM)
    await queue.bind(topology.deliveries_exchange, routing_key=recipient)
    dead = await channel.declare_queue(topology.dead_queue(recipient), durable=True, arguments=_QUORUM)
    await dead.bind(topology.dead_exchange, routing_key=recipient)
    return queue
