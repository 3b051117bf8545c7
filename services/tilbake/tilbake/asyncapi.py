"""The AsyncAPI document (docs/asyncapi.yaml), generated from the event contracts.

Every channel, message and schema comes from a payload model in :mod:`shared.contracts.events`
(its ``TYPE``, ``TITLE``, ``PRODUCER``, ``ON_BUS`` and docstring) and from
:class:`shared.events.EventEnvelope`; who receives an event comes from each service's queue
bindings (``binding_keys``), matched the way RabbitMQ matches them. ``tilbake asyncapi`` writes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, Protocol

import yaml

import agreement_api.config
import case_api.config
import notify_worker.config
from shared.bus import topic_matches
from shared.contracts.events import (
    EVENTS,
    EventPayload,
    NoticeReleaseDateChanged,
    NoticeReleaseUpcoming,
    WebhookTest,
)
from shared.events import EventEnvelope

Schema = dict[str, Any]


class QueueSettings(Protocol):
    """What a service's settings say about its place on the bus."""

    event_exchange: str
    queue: str
    binding_keys: list[str]


SCHEMAS = "#/components/schemas/"

DESCRIPTION = (
    "Domain events published by case-api, agreement-api and notify-worker through their transactional "
    "outboxes. Delivery is at-least-once: consumers deduplicate on the envelope `id`. The routing key is "
    "the event `type`. No event carries a national identity number, and the only names any event carries "
    "are the recipient's own staff in `notice.receipt_accepted.v1`."
)

SIGNED = (
    "signed with Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature` with "
    "`v1,` HMAC-SHA256 and/or `v1a,` ed25519 signatures, one per valid key)"
)

# The JSON Schema keywords whose values are schemas (maps of them, lists of them, or one).
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else", "propertyNames")


def prose(text: str) -> str:
    """A docstring or description as paragraphs of one line each."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in part.splitlines()) for part in paragraphs)


def _tidy(schema: Schema) -> Schema:
    """Without pydantic's generated titles, with descriptions as :func:`prose`."""
    out: Schema = {}
    for key, value in schema.items():
        if key == "title":
            continue
        if key == "description":
            value = prose(value)
        elif key in _SCHEMA_MAPS:
            value = {name: _tidy(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS:
            value = [_tidy(sub) for sub in value]
        elif key in _SCHEMA_ONE and isinstance(value, dict):
            value = _tidy(value)
        out[key] = value
    return out


class _Schemas:
    """``components.schemas``: the shared definitions every payload schema refers to."""

    def __init__(self) -> None:
        self.named: dict[str, Schema] = {}

    def add(self, name: str, schema: Schema) -> None:
        if self.named.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are both named {name!r}")

    def of(self, model: type[EventPayload] | type[EventEnvelope]) -> Schema:
        """The model's serialized form, its definitions moved to ``components.schemas``."""
        schema = model.model_json_schema(mode="serialization", ref_template=SCHEMAS + "{model}")
        for name, definition in schema.pop("$defs", {}).items():
            self.add(name, _tidy(definition))
        return _tidy(schema)


def _own_doc(cls: type) -> str | None:
    doc = cls.__dict__.get("__doc__")
    return prose(doc) if doc else None


def summary(model: type[EventPayload]) -> str:
    """The first paragraph of the model's docstring."""
    doc = _own_doc(model)
    if doc is None:
        raise ValueError(f"{model.__name__} ({model.TYPE}) needs a docstring: it is the event's description")
    return doc.split("\n\n", 1)[0]


def carries(model: type[EventPayload]) -> str | None:
    """What its base classes say every payload of theirs carries (their docstrings)."""
    parts = [
        _own_doc(base)
        for base in model.__mro__[1:]
        if issubclass(base, EventPayload) and base is not EventPayload
    ]
    return "\n\n".join(part for part in parts if part) or None


def key(event_type: str) -> str:
    """The id of an event's channel and message: ``case.status_changed.v1`` -> ``caseStatusChanged``
    (a version after the first is kept: ``caseStatusChangedV2``)."""
    *words, revision = event_type.split(".")
    parts = [part for word in words for part in word.split("_")]
    name = parts[0] + "".join(part.capitalize() for part in parts[1:])
    return name if revision == "v1" else name + revision.capitalize()


def _pascal(service: str) -> str:
    return "".join(part.capitalize() for part in service.split("-"))


# --- webhook bodies ------------------------------------------------------------------------------


def _flat_body(model: type[EventPayload], data: Schema) -> Schema:
    """notify-worker's notice body: the payload's fields beside its ``type`` (no envelope)."""
    return {
        **data,
        "properties": {"type": {"type": "string", "const": model.TYPE}, **data["properties"]},
        "required": ["type", *data["required"]],
    }


def _envelope_body(model: type[EventPayload], data: Schema) -> Schema:
    """agreement-api's test event: an envelope without a correlation id, its id the webhook id."""
    return {
        "type": "object",
        "required": ["id", "type", "occurred_at", "source", "subject", "data"],
        "properties": {
            "id": {"type": "string", "description": "Same as the `webhook-id` header (`msg_…`)."},
            "type": {"type": "string", "const": model.TYPE},
            "occurred_at": {"type": "string", "format": "date-time"},
            "source": {"type": "string", "const": model.PRODUCER},
            "subject": {"type": "string", "description": "`webhook/<endpoint id>`."},
            "data": data,
        },
    }


# How each webhook body wraps its payload: see notify_worker's sender (``payload``) and
# agreement_api.webhooks.service (``_test_body``). A new webhook body needs its entry here.
WEBHOOK_BODIES: dict[str, Callable[[type[EventPayload], Schema], Schema]] = {
    NoticeReleaseUpcoming.TYPE: _flat_body,
    NoticeReleaseDateChanged.TYPE: _flat_body,
    WebhookTest.TYPE: _envelope_body,
}


# --- the document --------------------------------------------------------------------------------


def consuming_services() -> list[tuple[str, QueueSettings]]:
    """Every service that consumes events, with its test settings (as for the OpenAPI documents)."""
    return [
        ("case-api", case_api.config.Settings(env="test")),
        ("agreement-api", agreement_api.config.Settings(env="test")),
        ("notify-worker", notify_worker.config.Settings(env="test")),
    ]


def _consumers(
    event_type: str, services: list[tuple[str, QueueSettings]]
) -> list[tuple[str, QueueSettings, str]]:
    """(service, settings, binding key) for each service whose queue is bound to the type."""
    found = []
    for service, settings in services:
        matching = [pattern for pattern in settings.binding_keys if topic_matches(pattern, event_type)]
        if matching:
            found.append((service, settings, matching[0]))
    return found


def asyncapi_spec(services: list[tuple[str, QueueSettings]]) -> dict[str, Any]:
    """The document as a mapping, for ``services`` (name and settings, with ``queue`` and
    ``binding_keys``)."""
    exchange = services[0][1].event_exchange
    schemas = _Schemas()
    envelope = schemas.of(EventEnvelope)
    # The bus carries ``EventEnvelope.model_dump_json()``: every field, set or not.
    envelope["required"] = list(envelope["properties"])
    amqp = {
        "is": "routingKey",
        "exchange": {"name": exchange, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"},
        "bindingVersion": "0.3.0",
    }

    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for event_type, model in sorted(EVENTS.items(), key=lambda item: key(item[0])):
        name = key(event_type)
        channel_ref = {"$ref": f"#/channels/{name}"}
        # The docstring describes the event (channel and message); the payload's own description
        # says what every payload of its kind carries.
        data = schemas.of(model)
        del data["description"]
        if (carried := carries(model)) is not None:
            data = {"description": carried, **data}
        doc = _own_doc(model)
        message: dict[str, Any] = {"name": event_type, "title": model.TITLE, "summary": summary(model)}
        if doc != message["summary"]:
            message["description"] = doc
        if model.ON_BUS:
            channels[name] = {
                "address": event_type,
                "description": doc,
                "bindings": {"amqp": amqp},
                "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            }
            message["correlationId"] = {"location": "$message.payload#/correlation_id"}
            message["payload"] = {
                "allOf": [
                    {"$ref": SCHEMAS + "EventEnvelope"},
                    {"type": "object", "properties": {"data": data}},
                ]
            }
            operations[f"publish{name[0].upper()}{name[1:]}"] = {
                "action": "send",
                "channel": channel_ref,
                "summary": f"{model.PRODUCER} publishes it through its outbox.",
            }
            for service, settings, pattern in _consumers(event_type, services):
                operations[f"consume{name[0].upper()}{name[1:]}By{_pascal(service)}"] = {
                    "action": "receive",
                    "channel": channel_ref,
                    "summary": f"{service} consumes it (queue `{settings.queue}`, bound with `{pattern}`).",
                }
        else:
            if event_type not in WEBHOOK_BODIES:
                raise ValueError(f"{event_type} is a webhook body: say in WEBHOOK_BODIES how it is sent")
            channels[name] = {
                "address": event_type,
                "description": f"{doc}\n\nNot published on the bus: {model.PRODUCER} POSTs this body to "
                f"webhook endpoints, {SIGNED}.",
                "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            }
            message["payload"] = WEBHOOK_BODIES[event_type](model, data)
            operations[f"send{name[0].upper()}{name[1:]}"] = {
                "action": "send",
                "channel": channel_ref,
                "summary": f"{model.PRODUCER} POSTs it to webhook endpoints; it is never published on the bus.",
            }
        messages[name] = message

    return {
        "asyncapi": "3.0.0",
        "info": {"title": "tilbake events", "version": version("tilbake"), "description": DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": f"Durable topic exchange `{exchange}`; dead letters go to `{exchange}.dlx`.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {"EventEnvelope": envelope, **dict(sorted(schemas.named.items()))},
            "messages": messages,
        },
    }


class _Dumper(yaml.SafeDumper):
    """Writes every repeated mapping out in full: no anchors, no aliases."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 (the signature PyYAML calls)
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _represent_str)


def asyncapi_document() -> str:
    """docs/asyncapi.yaml: stable YAML, generated from the contracts and the services' settings."""
    return yaml.dump(
        asyncapi_spec(consuming_services()),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=110,
        default_flow_style=False,
    )
