"""Each service answers as its OpenAPI document says: schemathesis generates requests (valid and
invalid) from docs/openapi/*.json, the app serves them in-process on the test transaction, and
every response is checked against the document. A fixed, derandomized number of examples per
operation keeps the run short and the same on every run."""

from __future__ import annotations

import importlib
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import auth, running, test_settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "openapi"
EXAMPLES = 8  # per operation and generation mode (valid, invalid)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
SERVICES = {
    "case-api": ("case_api", {}),
    "agreement-api": ("agreement_api", {}),
    "notify-worker": ("notify_worker", {"dispatch_enabled": False}),
}
METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")
# Known mismatches still to fix, as (service, "METHOD /path", check name): each with its reason.
EXCLUDED: dict[tuple[str, str, str], str] = {}


def generate(operation: Any) -> list[Any]:
    cases: list[Any] = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def collect(case: Any) -> None:
            cases.append(case)

        try:
            collect()
        except Unsatisfiable:
            # Only an operation without any input (/healthz) has no invalid requests to make.
            assert mode is GenerationMode.NEGATIVE, operation.label
            inputs = (operation.path_parameters, operation.query, operation.headers, operation.body)
            assert not any(inputs), operation.label
    return cases


async def send(
    client: httpx.AsyncClient, case: Any, headers: dict[str, str]
) -> tuple[httpx.Response, dict[str, Any]]:
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers=headers)
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif "data" in kwargs:
        body["content" if isinstance(kwargs["data"], str | bytes) else "data"] = kwargs["data"]
    elif "content" in kwargs:
        body["content"] = kwargs["content"]
    sent_headers = dict(kwargs.get("headers") or {})
    if cookies := kwargs.get("cookies"):
        sent_headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    response = await client.request(
        kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=sent_headers, **body
    )
    return response, kwargs


@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", list(SERVICES))
async def test_responses_match_the_openapi_document(
    service: str, database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    package, overrides = SERVICES[service]
    document = json.loads((DOCS / f"{service}.json").read_text())
    schema = schemathesis.openapi.from_dict(document)
    app = importlib.import_module(f"{package}.main").create_app(
        test_settings(f"{package}.config", database_url, **overrides)
    )
    started = time.monotonic()
    failures: list[str] = []
    by_check: Counter[str] = Counter()
    operations = cases_sent = probes = 0
    async with running(app, sessionmaker=sessionmaker) as client:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            label = f"{operation.method.upper()} {operation.path}"
            for case in generate(operation):
                response, kwargs = await send(client, case, auth("admin"))
                cases_sent += 1
                try:
                    case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))
                except (FailureGroup, Failure) as exc:
                    group = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
                    for failure in group:
                        check = type(failure).__name__
                        if (service, label, check) in EXCLUDED:
                            continue
                        by_check[check] += 1
                        failures.append(
                            f"{label} [{check}] {response.status_code}: {failure.title}: {response.text[:160]}"
                        )
        # A method the path does not answer: 405 as a problem, Allow naming the documented methods
        # (of every documented path the URL matches: /persons/lookup is also /persons/{person_id}).
        templates = {
            path: re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$") for path in document["paths"]
        }
        for path in document["paths"]:
            concrete = path.replace("{", "").replace("}", "")
            documented = sorted(
                {
                    method.upper()
                    for template, pattern in templates.items()
                    if pattern.match(concrete)
                    for method in document["paths"][template]
                }
            )
            for method in METHODS:
                if method in documented:
                    continue
                response = await client.request(method, concrete, headers=auth("admin"))
                probes += 1
                if response.status_code != 405 or response.headers.get("allow") != ", ".join(documented):
                    by_check["allow_header"] += 1
                    failures.append(
                        f"{method} {path} [allow_header] {response.status_code} Allow: "
                        f"{response.headers.get('allow')!r}, documented {documented}"
                    )
    elapsed = time.monotonic() - started
    print(
        f"\n{service}: {operations} operations, {cases_sent} cases, {probes} 405 probes, {elapsed:.1f} s, "
        f"failures {dict(by_check)}"
    )
    unique = sorted(set(failures))
    assert not unique, f"{len(unique)} distinct failures:\n" + "\n".join(unique[:80])
