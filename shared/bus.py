"""Message-bus port with a RabbitMQ adapter and an in-process adapter.

The port is small on purpose: ``publish`` returns only once the broker has confirmed the message
(so the outbox relay may then mark it sent), and ``subscribe`` runs a handler per message and
acknowledges only after the handler returned, which means after its unit of work committed.
A handler that raises has its message redelivered; one that keeps failing goes to the dead-letter
exchange. A message that can never succeed (not a valid envelope, or a payload that does not fit
its contract: :class:`MalformedEvent`) is dead-lettered at once, logged and counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from shared.context import correlation_id_var
from shared.contracts.events import MalformedEvent
from shared.events import EventEnvelope
from shared.metrics import EVENTS_DEAD_LETTERED

Handler = Callable[[EventEnvelope], Awaitable[None]]
log = structlog.get_logger("shared.bus")


class MessageBus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the bus cannot be reached."""

    async def publish(self, event: EventEnvelope) -> None:
        """Publish and wait for the broker's confirmation."""

    async def subscribe(self, queue: str, binding_keys: list[str], handler: Handler) -> None:
        """Consume ``queue`` (bound to ``binding_keys``) with ``handler``."""

    async def stop_consuming(self, timeout: float = 30.0) -> None:
        """Stop taking new messages; in-flight handlers get ``timeout`` seconds to finish."""


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` is zero or more words."""
    words, keys = pattern.split("."), routing_key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(words):
            return j == len(keys)
        if words[i] == "#":
            return any(match(i + 1, rest) for rest in range(j, len(keys) + 1))
        if j == len(keys):
            return False
        return words[i] in ("*", keys[j]) and match(i + 1, j + 1)

    return match(0, 0)


async def _run_handler(handler: Handler, event: EventEnvelope) -> None:
    token = correlation_id_var.set(event.correlation_id or event.id.hex)
    try:
        with structlog.contextvars.bound_contextvars(event_id=str(event.id), event_type=event.type):
            await handler(event)
    finally:
        correlation_id_var.reset(token)


def _malformed(queue: str, exc: MalformedEvent) -> None:
    log.error(
        "bus.malformed_event",
        queue=queue,
        event_id=str(exc.event_id),
        event_type=exc.event_type,
        errors=exc.errors,
    )
    EVENTS_DEAD_LETTERED.labels(queue, exc.event_type, "invalid_payload").inc()


# --------------------------------------------------------------------------- in-process


@dataclass
class _Subscription:
    queue: str
    binding_keys: list[str]
    handler: Handler


@dataclass
class InProcessBus:
    """Delivers each published event to matching subscribers before ``publish`` returns.

    Because delivery completes before the outbox relay marks the row published, the embedded
    mode keeps the outbox's at-least-once promise across a crash. A handler that fails
    ``max_attempts`` times puts the event on :attr:`dead_letters`.
    """

    max_attempts: int = 3
    retry_delay: float = 0.05
    subscriptions: list[_Subscription] = field(default_factory=list)
    dead_letters: list[tuple[str, EventEnvelope, str]] = field(default_factory=list)
    _consuming: bool = True

    async def start(self) -> None:
        self._consuming = True

    async def close(self) -> None:
        self._consuming = False

    async def ping(self) -> None:
        return None

    async def stop_consuming(self, timeout: float = 30.0) -> None:  # noqa: ARG002
        # Delivery happens inside publish(), so nothing is ever in flight here.
        self._consuming = False

    async def subscribe(self, queue: str, binding_keys: list[str], handler: Handler) -> None:
        self.subscriptions.append(_Subscription(queue, list(binding_keys), handler))

    async def publish(self, event: EventEnvelope) -> None:
        for sub in list(self.subscriptions):
            if not self._consuming or not any(topic_matches(k, event.routing_key) for k in sub.binding_keys):
                continue
            for attempt in range(1, self.max_attempts + 1):
                try:
                    await _run_handler(sub.handler, event)
                    break
                except MalformedEvent as exc:
                    _malformed(sub.queue, exc)
                    self.dead_letters.append((sub.queue, event, type(exc).__name__))
                    break
                except Exception as exc:
                    log.warning(
                        "bus.handler_failed",
                        queue=sub.queue,
                        attempt=attempt,
                        error_class=type(exc).__name__,
                    )
                    if attempt == self.max_attempts:
                        self.dead_letters.append((sub.queue, event, type(exc).__name__))
                    else:
                        await asyncio.sleep(self.retry_delay * attempt)


# --------------------------------------------------------------------------- RabbitMQ


class RabbitMQBus:
    """aio-pika adapter: durable topic exchange, confirms, DLX, manual ack after the handler."""

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "tilbake.events",
        queue_type: str = "quorum",
        delivery_limit: int = 5,
        prefetch: int = 16,
        publish_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.exchange_name = exchange
        self.dead_letter_exchange_name = f"{exchange}.dlx"
        self.queue_type = queue_type
        self.delivery_limit = delivery_limit
        self.prefetch = prefetch
        self.publish_timeout = publish_timeout
        self._connection: Any = None
        self._publish_channel: Any = None
        self._exchange: Any = None
        self._consumers: list[tuple[Any, str]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        import aio_pika

        async with self._lock:
            if self._connection is not None:
                return
            # connect_robust reconnects by itself and re-declares exchanges, queues and consumers.
            self._connection = await aio_pika.connect_robust(
                self.url, client_properties={"connection_name": "tilbake"}
            )
            self._publish_channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await self._declare_exchanges(self._publish_channel)

    async def _declare_exchanges(self, channel: Any) -> Any:
        import aio_pika

        exchange = await channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await channel.declare_exchange(
            self.dead_letter_exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        return exchange

    async def close(self) -> None:
        await self.stop_consuming()
        if self._connection is not None:
            await self._connection.close()
        self._connection = None

    async def ping(self) -> None:
        if self._connection is None or self._connection.is_closed:
            raise ConnectionError("not connected to RabbitMQ")
        # A robust connection that is reconnecting reports is_closed=False but has no transport.
        if (
            getattr(self._connection, "connected", None) is not None
            and not self._connection.connected.is_set()
        ):
            raise ConnectionError("RabbitMQ connection is down")

    async def publish(self, event: EventEnvelope) -> None:
        import aio_pika

        if self._exchange is None:
            await self.start()
        message = aio_pika.Message(
            body=event.model_dump_json().encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(event.id),
            correlation_id=event.correlation_id,
            type=event.type,
            timestamp=event.occurred_at,
            headers={"source": event.source},
        )
        # With publisher confirms, publish() returns once the broker has the message (or raises).
        await self._exchange.publish(
            message, routing_key=event.routing_key, mandatory=False, timeout=self.publish_timeout
        )

    async def subscribe(self, queue: str, binding_keys: list[str], handler: Handler) -> None:
        import aio_pika

        if self._connection is None:
            await self.start()
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        exchange = await self._declare_exchanges(channel)
        dead_exchange = await channel.get_exchange(self.dead_letter_exchange_name)
        dead_queue = await channel.declare_queue(
            f"{queue}.dead", durable=True, arguments={"x-queue-type": self.queue_type}
        )
        # Dead letters are routed by the name of the queue they died in, so each consumer's
        # dead-letter queue holds only its own.
        await dead_queue.bind(dead_exchange, routing_key=queue)
        arguments: dict[str, Any] = {
            "x-queue-type": self.queue_type,
            "x-dead-letter-exchange": self.dead_letter_exchange_name,
            "x-dead-letter-routing-key": queue,
        }
        if self.queue_type == "quorum":
            arguments["x-delivery-limit"] = self.delivery_limit
        amqp_queue = await channel.declare_queue(queue, durable=True, arguments=arguments)
        for key in binding_keys:
            await amqp_queue.bind(exchange, routing_key=key)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._in_flight.add(task)
            self._idle.clear()
            try:
                await self._handle(message, handler, queue)
            finally:
                self._in_flight.discard(task)
                if not self._in_flight:
                    self._idle.set()

        tag = await amqp_queue.consume(on_message, no_ack=False)
        self._consumers.append((amqp_queue, tag))

    async def _handle(self, message: Any, handler: Handler, queue: str) -> None:
        try:
            event = EventEnvelope.model_validate_json(message.body)
        except ValueError:
            log.error("bus.malformed_message", queue=queue, message_id=message.message_id)
            EVENTS_DEAD_LETTERED.labels(queue, str(message.type or "unknown"), "invalid_envelope").inc()
            await message.reject(requeue=False)
            return
        try:
            await _run_handler(handler, event)
        except MalformedEvent as exc:
            _malformed(queue, exc)
            await message.reject(requeue=False)
            return
        except Exception as exc:
            log.warning(
                "bus.handler_failed",
                queue=queue,
                event_id=str(event.id),
                event_type=event.type,
                redelivered=message.redelivered,
                error_class=type(exc).__name__,
            )
            # Quorum queues count deliveries and dead-letter past x-delivery-limit; classic
            # queues get one redelivery, then the dead-letter exchange.
            requeue = self.queue_type == "quorum" or not message.redelivered
            await message.nack(requeue=requeue)
            return
        await message.ack()

    async def stop_consuming(self, timeout: float = 30.0) -> None:
        for queue, tag in self._consumers:
            try:
                await queue.cancel(tag)
            except Exception as exc:  # the channel may already be gone; unacked messages return
                log.info("bus.cancel_failed", error_class=type(exc).__name__)
        self._consumers.clear()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("bus.in_flight_abandoned", count=len(self._in_flight))


def create_bus(amqp_url: str | None, *, exchange: str, queue_type: str) -> MessageBus:
    if amqp_url:
        return RabbitMQBus(amqp_url, exchange=exchange, queue_type=queue_type)
    return InProcessBus()
