"""The RabbitMQ side of the scale-out queue: one robust connection, a publisher channel with
confirms, and one consumer channel per partner with a bounded prefetch.

Contracts:

* ``publish`` returns only when the broker confirmed EVERY message given (published
  persistent, ``mandatory``, confirms awaited together: pipelined, not one round trip
  each); otherwise it raises ``BrokerUnavailable`` and the caller MUST treat all of them as
  not published.
* A consumed message stays unacknowledged until the caller ``settle``s it; the caller
  MUST settle it only after the delivery's outcome is committed in PostgreSQL. A message
  whose channel died (broker restart, connection loss) is returned to its queue by the
  broker and is dropped from the buffer here, never settled.
* Messages carry ids only; this module never sees a payload, and never logs the AMQP URL
  (it may hold a password).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)

from canonical.errors import GatewayError
from gateway.errors import ConfigError
from gateway.store.rabbitmq_topology import Exchanges, Topology, declare_partner, declare_shared, park_level

log = structlog.get_logger("gateway.store.rabbitmq")

MESSAGE_ID_HEADER = "x-gateway-message-id"
LAST_ERROR_HEADER = "x-gateway-last-error"
ATTEMPTS_HEADER = "x-gateway-attempts"

_BROKER_ERRORS = (
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.AMQPError,
    ConnectionError,
    OSError,
    TimeoutError,
    RuntimeError,
)
"""What a publish or declare raises while the broker is down or restarting."""


class _NotConfirmed(RuntimeError):
    """The broker answered a publish with something other than an ack (nack, return)."""


class BrokerUnavailable(GatewayError):
    """The broker did not confirm in time (down, restarting, or refusing). Retryable: the
    client sends again with its Idempotency-Key and gets the same message id."""

    title = "Service unavailable"
    status = 503
    type_slug = "broker-unavailable"
    retry_after_seconds = 5


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One delivery to put on its partner's queue, now (``delay <= 0``) or parked."""

    delivery_id: str
    message_id: str
    recipient: str
    delay: float = 0.0


def delivery_id_of(message: AbstractIncomingMessage) -> str:
    return message.message_id or message.body.decode()


class PartnerConsumer:
    """The unacknowledged messages prefetched for one partner on this instance.

    At most ``prefetch`` messages are ever here (the channel's QoS). ``lock`` serialises the
    leasers of this partner on this instance."""

    def __init__(self, recipient: str, on_arrival: Callable[[str], None] | None = None) -> None:
        self.recipient = recipient
        self.lock = asyncio.Lock()
        self._buffer: deque[AbstractIncomingMessage] = deque()
        self._arrived = asyncio.Event()
        self._on_arrival = on_arrival

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        self._buffer.append(message)
        self._arrived.set()
        if self._on_arrival is not None:
            self._on_arrival(self.recipient)

    def _drop_stale(self) -> None:
        self._buffer = deque(m for m in self._buffer if not m.channel.is_closed)

    def ids(self) -> set[str]:
        self._drop_stale()
        return {delivery_id_of(m) for m in self._buffer}

    async def wait_for(self, wanted: set[str], timeout: float, *, linger: float) -> None:
        """Wait until every id in ``wanted`` is buffered, or ``timeout`` passes; once some
        of them are here, wait at most ``linger`` for each next arrival (the rest may be
        prefetched by another instance)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            present = wanted & self.ids()
            if present == wanted:
                return
            remaining = deadline - loop.time()
            step = min(remaining, linger) if present else remaining
            if step <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), step)
            except TimeoutError:
                if present:
                    return

    def take(self, n: int) -> list[AbstractIncomingMessage]:
        self._drop_stale()
        out: list[AbstractIncomingMessage] = []
        while self._buffer and len(out) < n:
            out.append(self._buffer.popleft())
        return out

    def give_back(self, message: AbstractIncomingMessage) -> None:
        """Put a still-unacknowledged message back at the head (an expired lease)."""
        self._buffer.appendleft(message)

    def __len__(self) -> int:
        return len(self._buffer)


class Broker:
    """The connection, the shared topology and the per-partner consumers.

    ``url`` is a secret: it MUST NOT appear in logs or errors."""

    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        prefetch: int = 50,
        confirm_timeout: float = 5.0,
        reconnect_interval: float = 1.0,
        connect_timeout: float = 10.0,
    ) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self._url = url
        self.topology = topology
        self._prefetch = prefetch
        self._confirm_timeout = confirm_timeout
        self._reconnect_interval = reconnect_interval
        self._connect_timeout = connect_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._exchanges: Exchanges | None = None
        self._declared: set[str] = set()
        self._consumers: dict[str, PartnerConsumer] = {}
        self._consumer_channels: list[AbstractChannel] = []
        self._consumer_lock = asyncio.Lock()
        self.reconnected = asyncio.Event()
        """Set after each reconnection (the outbox relay then runs at once)."""
        self.on_arrival: Callable[[str], None] | None = None
        """Called with the recipient when a message arrives for it (e.g. the delivery
        worker's ``Dispatcher.notify``, so it need not wait for its poll interval). MUST NOT
        block."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url='**********', prefix={self.topology.prefix!r})"

    async def open(self) -> None:
        """Connect and declare the shared topology; ``ConfigError`` (no URL in it) when the
        broker cannot be reached at start-up. Later outages are survived: the connection,
        channels, declarations and consumers are restored by ``connect_robust``."""
        try:
            connection = await aio_pika.connect_robust(
                self._url, timeout=self._connect_timeout, reconnect_interval=self._reconnect_interval
            )
        except (*_BROKER_ERRORS, ValueError) as exc:
            raise ConfigError(
                f"store.amqp_url (amqp-connect): cannot connect to RabbitMQ: {type(exc).__name__}"
            ) from None
        try:
            self._publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchanges = await declare_shared(self._publisher, self.topology)
        except BaseException:
            await connection.close()
            raise
        connection.reconnect_callbacks.add(self._on_reconnect)
        self._connection = connection

    def _on_reconnect(self, *_: object) -> None:
        log.warning("rabbitmq.reconnected")
        self.reconnected.set()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
        self._consumers.clear()
        self._consumer_channels.clear()
        self._declared.clear()

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._connection.connected.is_set()

    async def _partner(self, recipient: str) -> None:
        if recipient in self._declared:
            return
        assert self._publisher is not None, "the broker is not open"
        await declare_partner(self._publisher, self.topology, recipient)
        self._declared.add(recipient)

    async def publish(self, items: Sequence[Outgoing]) -> None:
        """Publish all, then await all confirms (see the module contract)."""
        if not items:
            return
        try:
            async with asyncio.timeout(self._confirm_timeout):
                for recipient in sorted({i.recipient for i in items}):
                    await self._partner(recipient)
                results = await asyncio.gather(*(self._publish_one(i) for i in items), return_exceptions=True)
        except _BROKER_ERRORS as exc:
            raise self._unavailable(exc) from None
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise self._unavailable(failed[0])

    async def _publish_one(self, item: Outgoing) -> None:
        exchanges = self._exchanges
        assert exchanges is not None, "the broker is not open"
        exchange = exchanges.deliveries if item.delay <= 0 else exchanges.park[park_level(item.delay)]
        await self._confirmed(
            exchange.publish(self._message(item), routing_key=item.recipient, mandatory=True)
        )

    @staticmethod
    def _message(item: Outgoing, headers: dict[str, str | int] | None = None) -> aio_pika.Message:
        return aio_pika.Message(
            item.delivery_id.encode(),
            message_id=item.delivery_id,
            content_type="text/plain",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={MESSAGE_ID_HEADER: item.message_id, **(headers or {})},
        )

    @staticmethod
    async def _confirmed(publishing: object) -> None:
        assert asyncio.iscoroutine(publishing)
        result = await publishing
        if not isinstance(result, aiormq.spec.Basic.Ack):
            raise _NotConfirmed(type(result).__name__)

    async def dead_letter(self, item: Outgoing, error_code: str, attempts: int) -> None:
        """Copy a dead-lettered delivery to ``{p}.dead`` with its last error code (never
        content) and attempt count in headers; confirmed like ``publish``."""
        exchanges = self._exchanges
        assert exchanges is not None, "the broker is not open"
        headers: dict[str, str | int] = {LAST_ERROR_HEADER: error_code, ATTEMPTS_HEADER: attempts}
        try:
            async with asyncio.timeout(self._confirm_timeout):
                await self._partner(item.recipient)
                await self._confirmed(
                    exchanges.dead.publish(
                        self._message(item, headers), routing_key=item.recipient, mandatory=True
                    )
                )
        except _BROKER_ERRORS as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: BaseException) -> BrokerUnavailable:
        log.warning("rabbitmq.unconfirmed", error=type(exc).__name__)
        return BrokerUnavailable(
            "the message broker did not confirm the deliveries; nothing is lost: retry with the "
            "same Idempotency-Key"
        )

    async def consumer(self, recipient: str) -> PartnerConsumer:
        """This instance's consumer of a partner's queue, started on first use."""
        found = self._consumers.get(recipient)
        if found is not None:
            return found
        async with self._consumer_lock:
            found = self._consumers.get(recipient)
            if found is not None:
                return found
            connection = self._connection
            if connection is None:
                raise RuntimeError("the RabbitMQ queue is not open")
            try:
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=self._prefetch)
                queue = await declare_partner(channel, self.topology, recipient)
                consumer = PartnerConsumer(recipient, self._arrival)
                await queue.consume(consumer.on_message, no_ack=False)
            except _BROKER_ERRORS as exc:
                raise self._unavailable(exc) from None
            self._consumer_channels.append(channel)
            self._consumers[recipient] = consumer
            return consumer

    def _arrival(self, recipient: str) -> None:
        if self.on_arrival is not None:
            self.on_arrival(recipient)

    @staticmethod
    async def settle(message: AbstractIncomingMessage, *, requeue: bool = False) -> None:
        """Acknowledge (or, with ``requeue``, return to the queue) a consumed message. A
        message whose channel died is back in its queue already: nothing to do."""
        if message.channel.is_closed:
            return
        try:
            if requeue:
                await message.nack(requeue=True)
            else:
                await message.ack()
        except _BROKER_ERRORS as exc:
            log.info("rabbitmq.settle_skipped", error=type(exc).__name__)
