"""The published API and event contracts match the code."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import yaml
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.models import CaseOutbox
from shared.contracts.events import EVENTS
from shared.db import table_of, utcnow
from shared.events import EventEnvelope
from shared.settings import REPO_ROOT
from tests.conftest import EventContractCheck, EventContractViolation
from tests.events import case_event
from tilbake.asyncapi import asyncapi_document
from tilbake.cli import openapi_documents

DOCS = REPO_ROOT / "docs"


def test_committed_openapi_documents_match_the_services() -> None:
    for name, document in openapi_documents().items():
        committed = (DOCS / "openapi" / f"{name}.json").read_text()
        assert committed == document, f"docs/openapi/{name}.json is stale: run `tilbake openapi`"


def test_every_api_route_declares_its_problem_responses() -> None:
    for name, document in openapi_documents().items():
        spec = json.loads(document)
        assert spec["info"]["title"] == name
        assert spec["info"]["version"]
        for path, operations in spec["paths"].items():
            if not path.startswith("/api/v1"):
                continue
            for method, operation in operations.items():
                assert "401" in operation["responses"], f"{name} {method.upper()} {path} hides its 401"
                problem = operation["responses"]["401"]["content"]
                assert "application/problem+json" in problem


def _asyncapi() -> dict[str, Any]:
    return dict(yaml.safe_load((DOCS / "asyncapi.yaml").read_text()))


def test_committed_asyncapi_document_matches_the_contracts() -> None:
    committed = (DOCS / "asyncapi.yaml").read_text()
    assert committed == asyncapi_document(), "docs/asyncapi.yaml is stale: run `tilbake asyncapi`"


def test_asyncapi_has_a_channel_and_a_message_for_every_event_type() -> None:
    spec = _asyncapi()
    messages = {message["name"]: message for message in spec["components"]["messages"].values()}
    channels = {channel["address"]: channel for channel in spec["channels"].values()}
    assert set(messages) == set(EVENTS)
    assert set(channels) == set(EVENTS)
    for event_type, model in EVENTS.items():
        assert messages[event_type]["title"] == model.TITLE
        on_bus = channels[event_type].get("bindings", {}).get("amqp", {}).get("is") == "routingKey"
        assert on_bus == model.ON_BUS, f"{event_type}: AMQP binding only for events on the bus"
        sends = [
            operation
            for operation in spec["operations"].values()
            if operation["action"] == "send" and channels[event_type] is _resolve(spec, operation["channel"])
        ]
        assert len(sends) == 1, f"{event_type} needs exactly one send operation"


# JSON Schema draft-07 (which AsyncAPI 3.0 schemas extend) has these keywords, and the document uses
# no others: nothing 2020-12 only such as `$defs` or `prefixItems`.
DRAFT_07 = frozenset(
    (  # noqa: SIM905 (a list literal would take a line per keyword)
        "$ref $id $schema $comment title description default readOnly writeOnly examples multipleOf maximum "
        "exclusiveMaximum minimum exclusiveMinimum maxLength minLength pattern additionalItems items maxItems "
        "minItems uniqueItems contains maxProperties minProperties required additionalProperties definitions "
        "properties patternProperties dependencies propertyNames const enum type format contentMediaType "
        "contentEncoding if then else allOf anyOf oneOf not"
    ).split()
)


def _resolve(spec: dict[str, Any], reference: dict[str, str]) -> Any:
    pointer = reference["$ref"]
    assert pointer.startswith("#/"), pointer
    node: Any = spec
    for part in pointer[2:].split("/"):
        assert part in node, f"{pointer} points nowhere"
        node = node[part]
    return node


def _schema_keywords(schema: Any, where: str) -> None:
    assert isinstance(schema, dict), where
    assert set(schema) <= DRAFT_07, f"{where}: not draft-07: {sorted(set(schema) - DRAFT_07)}"
    for name, sub in schema.get("properties", {}).items():
        _schema_keywords(sub, f"{where}.{name}")
    for keyword in ("allOf", "anyOf", "oneOf"):
        for n, sub in enumerate(schema.get(keyword, [])):
            _schema_keywords(sub, f"{where}.{keyword}[{n}]")
    for keyword in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(keyword), dict):
            _schema_keywords(schema[keyword], f"{where}.{keyword}")


def test_asyncapi_document_has_the_shape_of_asyncapi_3() -> None:
    text = (DOCS / "asyncapi.yaml").read_text()
    assert not any(isinstance(item, yaml.AliasEvent) for item in yaml.parse(text)), "no YAML aliases"
    spec = _asyncapi()
    assert spec["asyncapi"] == "3.0.0"
    assert {"title", "version", "description"} <= set(spec["info"])
    for server in spec["servers"].values():
        assert {"host", "protocol"} <= set(server)

    def refs(node: Any) -> list[dict[str, str]]:
        if isinstance(node, dict):
            found = [node] if "$ref" in node else []
            return found + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    for reference in refs(spec):
        _resolve(spec, reference)
    for name, channel in spec["channels"].items():
        assert channel["address"], name
        assert channel["messages"], name
        for message in channel["messages"].values():
            assert message["$ref"].startswith("#/components/messages/"), name
        if "bindings" in channel:
            assert channel["bindings"]["amqp"]["exchange"]["type"] == "topic", name
    for name, operation in spec["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        assert operation["channel"]["$ref"].startswith("#/channels/"), name
    for name, message in spec["components"]["messages"].items():
        assert {"name", "title", "summary", "payload"} <= set(message), name
        _schema_keywords(message["payload"], f"message {name}")
    for name, schema in spec["components"]["schemas"].items():
        _schema_keywords(schema, f"schema {name}")


def test_asyncapi_envelope_matches_the_event_model() -> None:
    spec = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    envelope = spec["components"]["schemas"]["EventEnvelope"]
    assert set(envelope["required"]) == set(EventEnvelope.model_fields)
    assert set(envelope["properties"]) == set(EventEnvelope.model_fields)


async def test_an_event_that_breaks_its_contract_fails_the_test_that_stages_it(
    sessionmaker: async_sessionmaker[AsyncSession], event_contracts: EventContractCheck
) -> None:
    def row(event_type: str, data: dict[str, Any]) -> CaseOutbox:
        return CaseOutbox(
            id=uuid.uuid4(),
            type=event_type,
            source="case-api",
            subject=f"case/{uuid.uuid4()}",
            occurred_at=utcnow(),
            data=data,
        )

    opened = case_event(uuid.uuid4()).data
    broken = [
        ("case.opened.v1", {**opened, "status": "lost"}, "status"),
        ("case.opened.v1", {key: value for key, value in opened.items() if key != "case_id"}, "case_id"),
        ("case.opened.v1", {**opened, "inmate_name": "Kari Nordmann"}, "does not declare: ['inmate_name']"),
        ("case.reopened.v1", opened, "no contract"),
        ("webhook.test.v1", {}, "never published"),
    ]
    for event_type, data, problem in broken:
        async with sessionmaker() as session:
            session.add(row(event_type, data))
            with pytest.raises(EventContractViolation, match=f"^{event_type}") as raised:
                await session.flush()
        assert problem in str(raised.value)
        # The check also fails the test after the fact (in case the code swallowed the error): this
        # one produced the violations on purpose.
        assert event_contracts.violations.pop() == str(raised.value)

    checked = event_contracts.validated["case.opened.v1"]
    async with sessionmaker() as session:
        session.add(row("case.opened.v1", opened))
        await session.flush()
    assert event_contracts.validated["case.opened.v1"] == checked + 1


async def test_an_event_a_core_insert_stages_is_checked_as_well(
    sessionmaker: async_sessionmaker[AsyncSession], event_contracts: EventContractCheck
) -> None:
    """The hot paths stage a batch's events with one Core INSERT (shared.outbox.add_events)."""

    def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "id": uuid.uuid4(),
                "type": "case.opened.v1",
                "source": "case-api",
                "subject": f"case/{uuid.uuid4()}",
                "occurred_at": utcnow(),
                "data": data,
                "attempts": 0,
            }
        ]

    opened = case_event(uuid.uuid4()).data
    async with sessionmaker() as session:
        with pytest.raises(EventContractViolation, match=r"^case\.opened\.v1") as raised:
            await session.execute(insert(table_of(CaseOutbox)), rows({**opened, "status": "lost"}))
    assert "status" in str(raised.value)
    assert event_contracts.violations.pop() == str(raised.value)

    checked = event_contracts.validated["case.opened.v1"]
    async with sessionmaker() as session:
        await session.execute(insert(table_of(CaseOutbox)), rows(opened))
    assert event_contracts.validated["case.opened.v1"] == checked + 1
