"""The generated OpenAPI documents describe errors the way the problem handlers send them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi"
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}


def operations(name: str) -> list[tuple[str, str, dict[str, Any]]]:
    document = json.loads((DOCS / f"{name}.json").read_text())
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


@pytest.mark.parametrize("name", ["case-api", "agreement-api", "notify-worker"])
def test_every_error_is_documented_as_a_problem(name: str) -> None:
    text = (DOCS / f"{name}.json").read_text()
    assert "HTTPValidationError" not in text
    for path, method, op in operations(name):
        for code, response in op["responses"].items():
            if int(code) >= 400 and path != "/readyz":  # readiness answers its own JSON with 503
                assert response["content"] == PROBLEM, (path, method, code)
        parameters = {(p["in"], p["name"].lower()) for p in op.get("parameters", [])}
        refusable = {("query", "cursor"), ("header", "idempotency-key")} & parameters
        if refusable or "requestBody" in op:
            assert "400" in op["responses"], (path, method)
        if parameters or "requestBody" in op:
            assert "422" in op["responses"], (path, method)
