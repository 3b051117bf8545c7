"""The published API and event contracts match the code."""

from __future__ import annotations

import json
import re

import yaml

from shared.events import EventEnvelope
from shared.settings import REPO_ROOT
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


def _event_types_in_code() -> set[str]:
    pattern = re.compile(r'"([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+\.v\d+)"')
    found: set[str] = set()
    for path in [*REPO_ROOT.glob("services/*/*/**/*.py"), *REPO_ROOT.glob("shared/**/*.py")]:
        found |= set(pattern.findall(path.read_text()))
    return found


def test_asyncapi_documents_every_event_the_code_publishes() -> None:
    spec = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    assert spec["asyncapi"].startswith("3.")
    documented = {message["name"] for message in spec["components"]["messages"].values()}
    addresses = {channel["address"] for channel in spec["channels"].values()}
    published = _event_types_in_code()
    assert published, "no event types found in the code: the scan is broken"
    assert published <= documented, f"undocumented events: {sorted(published - documented)}"
    assert published <= addresses


def test_asyncapi_envelope_matches_the_event_model() -> None:
    spec = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    envelope = spec["components"]["schemas"]["EventEnvelope"]
    assert set(envelope["required"]) == set(EventEnvelope.model_fields)
    assert set(envelope["properties"]) == set(EventEnvelope.model_fields)
