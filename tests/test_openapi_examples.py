"""The committed OpenAPI documents as a generated client meets them: every request body has an
example, every example is valid against its schema, and the declarations clients rely on are there.

Examples are checked with JSON Schema 2020-12 (OpenAPI 3.1's dialect), references resolved inside
the document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from shared.settings import REPO_ROOT

SERVICES = ("case-api", "agreement-api", "notify-worker")
METHODS = {"get", "put", "post", "delete", "patch"}


def document(service: str) -> dict[str, Any]:
    return json.loads((REPO_ROOT / "docs" / "openapi" / f"{service}.json").read_text())


def validator_for(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """``#/components/...`` resolves against the root schema, so the components travel with it."""
    return Draft202012Validator({**schema, "components": doc.get("components", {})})


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema behind a reference, or behind the one reference of an optional body."""
    options = [option for option in schema.get("anyOf", []) if "$ref" in option]
    if len(options) == 1:
        schema = options[0]
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def media_examples(doc: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    """The examples a client sees for one media type: its own, else its schema's."""
    found = [media["example"]] if "example" in media else []
    found += [example["value"] for example in media.get("examples", {}).values() if "value" in example]
    if not found:
        found = list(resolve(doc, media.get("schema", {})).get("examples", []))
    return found


def schema_examples(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any], Any]]:
    """Every ``examples`` list inside a schema tree, with the schema it belongs to."""
    if isinstance(node, dict):
        if isinstance(node.get("examples"), list) and (
            "type" in node or "$ref" in node or "properties" in node or "anyOf" in node or "allOf" in node
        ):
            for example in node["examples"]:
                yield where, node, example
        for key, value in node.items():
            if key != "examples":
                yield from schema_examples(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from schema_examples(value, f"{where}/{index}")


@pytest.mark.parametrize("service", SERVICES)
def test_every_request_body_has_a_valid_example(service: str) -> None:
    doc = document(service)
    missing, invalid = [], []
    for method, path, operation in operations(doc):
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            examples = media_examples(doc, media)
            if not examples:
                missing.append(f"{method.upper()} {path} ({media_type})")
            validator = validator_for(doc, media.get("schema", {}))
            for example in examples:
                errors = [error.message for error in validator.iter_errors(example)]
                if errors:
                    invalid.append(f"{method.upper()} {path}: {errors[0]}")
    assert not missing, f"request bodies without an example: {missing}"
    assert not invalid, f"examples invalid against their schema: {invalid}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_example_in_the_document_is_valid(service: str) -> None:
    """Schema, parameter, header and response examples alike."""
    doc = document(service)
    invalid = []
    for where, schema, example in schema_examples(doc):
        if where.startswith("/components/schemas/") and where.count("/") == 3:
            checked = schema  # a model's examples against the whole model
        else:
            checked = {key: value for key, value in schema.items() if key != "examples"}
        errors = [error.message for error in validator_for(doc, checked).iter_errors(example)]
        if errors:
            invalid.append(f"{where}: {errors[0]}")
    for method, path, operation in operations(doc):
        for code, response in operation.get("responses", {}).items():
            for media in response.get("content", {}).values():
                validator = validator_for(doc, media.get("schema", {}))
                for example in media_examples(doc, media):
                    errors = [error.message for error in validator.iter_errors(example)]
                    if errors:
                        invalid.append(f"{method.upper()} {path} {code}: {errors[0]}")
    assert not invalid, f"examples invalid against their schema: {invalid}"


# The operations of the README walkthrough, whose answers a newcomer reads first.
MAIN_OPERATIONS = {
    "case-api": {
        "register_person",
        "get_person",
        "open_case",
        "get_case",
        "set_municipality",
        "set_release_date",
        "give_consent",
        "get_consent",
        "check_disclosure",
    },
    "agreement-api": {"create_organization", "get_organization", "update_organization"},
    "notify-worker": {"submit_receipt"},
}


@pytest.mark.parametrize("service", SERVICES)
def test_the_main_responses_have_examples(service: str) -> None:
    doc = document(service)
    seen, missing = set(), []
    for method, path, operation in operations(doc):
        if operation["operationId"] not in MAIN_OPERATIONS[service]:
            continue
        seen.add(operation["operationId"])
        for code, response in operation.get("responses", {}).items():
            media = response.get("content", {}).get("application/json")
            if code in {"200", "201"} and media is not None and not media_examples(doc, media):
                missing.append(f"{method.upper()} {path} {code}")
    assert seen == MAIN_OPERATIONS[service]
    assert not missing, f"success bodies without an example: {missing}"


@pytest.mark.parametrize("service", SERVICES)
def test_the_document_declares_what_clients_need(service: str) -> None:
    doc = document(service)
    declared = {tag["name"]: tag.get("description") for tag in doc.get("tags", [])}
    used = {tag for _, _, operation in operations(doc) for tag in operation.get("tags", [])}
    assert used <= declared.keys(), f"undeclared tags: {sorted(used - declared.keys())}"
    assert all(declared.values()), "a declared tag has no description"
    assert doc.get("servers"), "no servers"
    schemes = doc["components"]["securitySchemes"]
    assert all(scheme.get("bearerFormat") == "JWT" for scheme in schemes.values())
    ids = [operation["operationId"] for _, _, operation in operations(doc)]
    assert len(ids) == len(set(ids))
    assert all("_api_v1_" not in operation_id for operation_id in ids), "generated operation ids"
    for method, path, operation in operations(doc):
        for code, response in operation.get("responses", {}).items():
            if int(code) >= 400 and path.startswith("/api/"):
                assert list(response.get("content", {})) == ["application/problem+json"], (method, path, code)
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ProblemDetail"}, (method, path, code)
