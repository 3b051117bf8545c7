"""Message-bus port with a RabbitMQ adapter and an in-process adapter.

The port is small on purpose: ``publish`` returns only once the broker has confirmed the message
(so the outbox relay may then mark it sent), and ``subscribe`` runs a handler per message and
acknowledges only after the handler returned, which means after its unit of work committed.
A handler that raises has its message redelivered later, after a growing wait (``retry_delays``,
through one retry queue per wait whose expired messages go back to the consumer's queue); a
failure that waiting can cure (:func:`shared.retry.is_transient`) gets the whole schedule, any
other ``poison_attempts`` attempts. Then the message goes to the queue's dead-letter queue, from
where an operator can redrive it (:meth:`RabbitMQBus.redrive`). A message that can never succeed
(not a valid envelope, or a payload that does not fit its contract: :class:`MalformedEvent`) is
dead-lettered at once. Every dead letter is logged and counted.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from shared.context import correlation_id_var
from shared.contracts.events import MalformedEvent
from shared.events import EventEnvelope
from shared.metrics import EVENTS_DEAD_LETTERED, EVENTS_RETRIED
from shared.retry import POISON_ATTEMPTS, RETRY_DELAYS_SECONDS, is_transient

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

    async def dead_letters(self, queue: str, *, limit: int = 100) -> DeadLetters:
        """How many messages ``queue``'s dead-letter queue holds, and the first ``limit`` of them."""

    async def redrive(self, queue: str, *, limit: int | None = None) -> int:
        """Move dead letters (all, or the first ``limit``) back to ``queue``; how many moved."""


@dataclass(frozen=True)
class DeadLetter:
    """A message in a dead-letter queue, as an operator sees it (never its data)."""

    event_id: str | None
    type: str | None
    subject: str | None
    occurred_at: str | None
    reason: str | None  # why it was dead-lettered: the last error class, or the broker's reason


@dataclass(frozen=True)
class DeadLetters:
    queue: str
    count: int
    items: list[DeadLetter]


@functools.lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` is zero or more words. Cached: the
    in-process bus asks it for every event and binding key, and both sets are small."""
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


ATTEMPT_HEADER = "x-tilbake-attempt"  # which attempt a retried message is on (the first is 1)
ERROR_HEADER = "x-tilbake-last-error"  # the error class of the attempt that failed last
REDRIVEN_HEADER = "x-tilbake-redriven"  # how often an operator sent it back from the dead letters


def _plain_headers(headers: Any) -> dict[str, Any]:
    """Our own headers of a message, without the broker's dead-letter history."""
    return {key: value for key, value in dict(headers or {}).items() if not key.startswith("x-death")}


def _copy(message: Any, headers: dict[str, Any]) -> Any:
    """A persistent copy of a received message with ``headers``, to publish again."""
    import aio_pika

    return aio_pika.Message(
        body=message.body,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        timestamp=message.timestamp,
        headers=headers,
    )


def _dead_letter_of(message: Any) -> DeadLetter:
    try:
        event: EventEnvelope | None = EventEnvelope.model_validate_json(message.body)
    except ValueError:
        event = None
    headers = dict(message.headers or {})
    reason = headers.get(ERROR_HEADER)
    if reason is None and headers.get("x-death"):
        reason = str(dict(headers["x-death"][0]).get("reason"))
    if event is None:
        return DeadLetter(None, message.type, None, None, str(reason or "invalid_envelope"))
    return _dead_letter(event, None if reason is None else str(reason))


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
    ``max_attempts`` times puts the event on :attr:`dead`, from where :meth:`redrive` hands it to
    its subscriber again.
    """

    max_attempts: int = 3
    retry_delay: float = 0.05
    subscriptions: list[_Subscription] = field(default_factory=list)
    dead: list[tuple[str, EventEnvelope, str]] = field(default_factory=list)
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

    async def dead_letters(self, queue: str, *, limit: int = 100) -> DeadLetters:
        mine = [(event, reason) for name, event, reason in self.dead if name == queue]
        return DeadLetters(queue, len(mine), [_dead_letter(event, reason) for event, reason in mine[:limit]])

    async def redrive(self, queue: str, *, limit: int | None = None) -> int:
        chosen = [item for item in self.dead if item[0] == queue][:limit]
        for item in chosen:
            self.dead.remove(item)
        for _queue, event, _reason in chosen:
            for sub in self.subscriptions:
                if sub.queue == queue:
                    await self._deliver(sub, event)
        return len(chosen)

    async def publish(self, event: EventEnvelope) -> None:
        for sub in list(self.subscriptions):
            if self._consuming and any(topic_matches(k, event.routing_key) for k in sub.binding_keys):
                await self._deliver(sub, event)

    async def _deliver(self, sub: _Subscription, event: EventEnvelope) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                await _run_handler(sub.handler, event)
                return
            except MalformedEvent as exc:
                _malformed(sub.queue, exc)
                self.dead.append((sub.queue, event, type(exc).__name__))
                return
            except Exception as exc:
                log.warning(
                    "bus.handler_failed", queue=sub.queue, attempt=attempt, error_class=type(exc).__name__
                )
                if attempt == self.max_attempts:
                    EVENTS_DEAD_LETTERED.labels(sub.queue, event.type, "handler_failed").inc()
                    self.dead.append((sub.queue, event, type(exc).__name__))
                else:
                    await asyncio.sleep(self.retry_delay * attempt)


def _dead_letter(event: EventEnvelope, reason: str | None) -> DeadLetter:
    return DeadLetter(
        event_id=str(event.id),
        type=event.type,
        subject=event.subject,
        occurred_at=event.occurred_at.isoformat(),
        reason=reason,
    )


# --------------------------------------------------------------------------- RabbitMQ


class RabbitMQBus:
    """aio-pika adapter: durable topic exchange, confirms, retry queues, DLX, manual ack after the
    handler."""

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "tilbake.events",
        queue_type: str = "quorum",
        delivery_limit: int = 5,
        prefetch: int = 16,
        publish_timeout: float = 10.0,
        retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS,
        poison_attempts: int = POISON_ATTEMPTS,
    ) -> None:
        self.url = url
        self.exchange_name = exchange
        self.dead_letter_exchange_name = f"{exchange}.dlx"
        self.queue_type = queue_type
        # A process killed mid-handler leaves its message unacknowledged: the broker redelivers it,
        # at most this many times (quorum queues), before dead-lettering it.
        self.delivery_limit = delivery_limit
        self.retry_delays = [max(0.001, float(delay)) for delay in retry_delays]
        self.poison_attempts = max(1, poison_attempts)
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
        for name, delay in self._retry_queues(queue):
            # A message waits here for its delay, then the broker dead-letters it back to ``queue``
            # through the default exchange. One queue per delay: a queue's TTL is its own.
            await channel.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-queue-type": self.queue_type,
                    "x-message-ttl": int(delay * 1000),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue,
                },
            )

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
            await self._retry_or_dead_letter(message, event, queue, exc)
            return
        await message.ack()

    def _retry_queues(self, queue: str) -> list[tuple[str, float]]:
        return [(f"{queue}.retry.{int(delay * 1000)}ms", delay) for delay in dict.fromkeys(self.retry_delays)]

    async def _retry_or_dead_letter(
        self, message: Any, event: EventEnvelope, queue: str, exc: Exception
    ) -> None:
        """Send a failed message to wait in the retry queue of its next delay, or, when its
        attempts are spent, to the dead-letter queue."""

        transient = is_transient(exc)
        attempts = int((message.headers or {}).get(ATTEMPT_HEADER, 1))
        allowed = len(self.retry_delays) + 1 if transient else self.poison_attempts
        error_class = type(exc).__name__
        fields = {"queue": queue, "event_id": str(event.id), "event_type": event.type, "attempt": attempts}
        if attempts >= allowed:
            log.error("bus.dead_lettered", transient=transient, error_class=error_class, **fields)
            EVENTS_DEAD_LETTERED.labels(
                queue, event.type, "retries_spent" if transient else "handler_failed"
            ).inc()
            await message.reject(requeue=False)
            return
        delay = self.retry_delays[min(attempts - 1, len(self.retry_delays) - 1)]
        retry = _copy(
            message,
            {**_plain_headers(message.headers), ATTEMPT_HEADER: attempts + 1, ERROR_HEADER: error_class},
        )
        try:
            if self._publish_channel is None:
                await self.start()
            await self._publish_channel.default_exchange.publish(
                retry, routing_key=f"{queue}.retry.{int(delay * 1000)}ms", timeout=self.publish_timeout
            )
        except Exception as publish_error:
            # The retry could not be parked: give the message back to the queue as it is.
            log.warning("bus.retry_not_parked", error_class=type(publish_error).__name__, **fields)
            await message.nack(requeue=True)
            return
        log.warning(
            "bus.handler_failed", retry_in=delay, transient=transient, error_class=error_class, **fields
        )
        EVENTS_RETRIED.labels(queue, event.type, "transient" if transient else "handler_failed").inc()
        await message.ack()

    async def dead_letters(self, queue: str, *, limit: int = 100) -> DeadLetters:
        """The dead-letter queue's length and its first ``limit`` messages, put back unchanged."""
        if self._connection is None:
            await self.start()
        import aio_pika

        channel = await self._connection.channel()
        try:
            try:
                dead = await channel.declare_queue(f"{queue}.dead", passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return DeadLetters(queue, 0, [])  # the consumer never subscribed: nothing died
            count = int(dead.declaration_result.message_count or 0)
            taken: list[Any] = []
            while len(taken) < min(limit, count) and (message := await dead.get(fail=False)) is not None:
                taken.append(message)
            items = [_dead_letter_of(message) for message in taken]
        finally:
            await channel.close()  # closing without acks returns every taken message to the queue
        return DeadLetters(queue, count, items)

    async def redrive(self, queue: str, *, limit: int | None = None) -> int:
        """Move dead letters back to ``queue`` with a fresh retry schedule, oldest first; each is
        acknowledged in the dead-letter queue only once the broker confirmed its copy."""
        import aio_pika

        if self._connection is None:
            await self.start()
        channel = await self._connection.channel(publisher_confirms=True)
        moved = 0
        try:
            try:
                dead = await channel.declare_queue(f"{queue}.dead", passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return 0
            # Only what is there now: a redriven message that fails again comes back to this queue
            # and must not be taken a second time in the same redrive.
            present = int(dead.declaration_result.message_count or 0)
            wanted = present if limit is None else min(limit, present)
            while moved < wanted:
                message = await dead.get(fail=False)
                if message is None:
                    break
                headers = _plain_headers(message.headers)
                headers.pop(ATTEMPT_HEADER, None)
                copy = _copy(message, {**headers, REDRIVEN_HEADER: int(headers.get(REDRIVEN_HEADER, 0)) + 1})
                await channel.default_exchange.publish(copy, routing_key=queue, timeout=self.publish_timeout)
                await message.ack()
                moved += 1
        finally:
            await channel.close()
        log.info("bus.redriven", queue=queue, messages=moved)
        return moved

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


def create_bus(
    amqp_url: str | None,
    *,
    exchange: str,
    queue_type: str,
    retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS,
) -> MessageBus:
    if amqp_url:
        return RabbitMQBus(amqp_url, exchange=exchange, queue_type=queue_type, retry_delays=retry_delays)
    return InProcessBus()
