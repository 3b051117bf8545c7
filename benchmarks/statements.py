"""What one case-api request costs in SQL: ``python -m benchmarks.statements SPEC.json``.

A sampling profile shows case-api's CPU in asyncpg and SQLAlchemy, not which statements a request
sends or how often. This harness runs the real case-api application (``case_api.main.create_app``
with the same ``CASE_API_*`` environment as the measured process, its real lifespan) in a process of
its own, sends the benchmark's requests through httpx's ASGI transport, and counts every statement
and every commit the application's engine sees, and every connection checkout from its pool (each
of which costs a ping first where the pool pre-pings), per request. Each statement is named by its verb,
its table and the columns its WHERE clause compares, so repeats stand out.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

VERB = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|WITH)\b", re.IGNORECASE)
TABLE_AFTER = {
    "SELECT": re.compile(r"\bFROM\s+(\w+)", re.IGNORECASE),
    "INSERT INTO": re.compile(r"^\s*INSERT INTO\s+(\w+)", re.IGNORECASE),
    "UPDATE": re.compile(r"^\s*UPDATE\s+(\w+)", re.IGNORECASE),
    "DELETE FROM": re.compile(r"^\s*DELETE FROM\s+(\w+)", re.IGNORECASE),
}
WHERE_COLUMN = re.compile(r"(\w+)\.(\w+)\s*(?:=|IN|<|>|<=|>=|IS)\s", re.IGNORECASE)


def statement_name(sql: str) -> str:
    """``SELECT case_organization_ref where id`` and the like."""
    match = VERB.match(sql)
    if match is None:
        return " ".join(sql.split())[:60]
    verb = match.group(1).upper()
    if verb == "WITH":
        # One statement doing several things: name what it reads and what it writes.
        reads = sorted(set(re.findall(r"\bFROM\s+(case_\w+|notify_\w+|agreement_\w+)", sql)))
        writes = re.findall(r"\bINSERT INTO\s+(\w+)", sql)
        return "WITH: " + ", ".join([*(f"SELECT {t}" for t in reads), *(f"INSERT {t}" for t in writes)])
    table_match = TABLE_AFTER[verb].search(sql)
    table = table_match.group(1) if table_match else "?"
    name = f"{verb.split()[0]} {table}"
    where = re.split(r"\bWHERE\b", sql, maxsplit=1, flags=re.IGNORECASE)
    if len(where) == 2:
        columns = sorted({column for _, column in WHERE_COLUMN.findall(where[1])})
        if columns:
            name += " where " + ", ".join(columns[:4])
    if re.search(r"\bFOR UPDATE\b", sql, re.IGNORECASE):
        name += " (FOR UPDATE)"
    return name


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ.update(spec["env"])
    from case_api.config import Settings
    from case_api.main import create_app
    from shared.db import RAW_STATEMENT_OBSERVERS

    app = create_app(Settings())
    statements: Counter[str] = Counter()
    commits = checkouts = 0

    def on_statement(*args: Any) -> None:
        statements[statement_name(args[2])] += 1

    def on_commit(*_args: Any) -> None:
        nonlocal commits
        commits += 1

    def on_checkout(*_args: Any) -> None:
        # Counted so a pre-ping would show: with one, every checkout first pings the server.
        nonlocal checkouts
        checkouts += 1

    results: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        engine = app.state.engine.sync_engine
        event.listen(engine, "before_cursor_execute", on_statement)
        event.listen(engine, "commit", on_commit)
        event.listen(engine.pool, "checkout", on_checkout)
        # The hot paths' own prepared statements, sent past SQLAlchemy on the same transaction.
        RAW_STATEMENT_OBSERVERS.append(lambda sql: on_statement(None, None, sql))
        # The outbox relay polls on its own: stopped, so its statements are not billed to requests.
        relay = getattr(app.state, "outbox_relay", None)
        if relay is not None:
            relay.stop()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://case-api", headers=spec["headers"]
        ) as client:
            for scenario in spec["scenarios"]:
                statements.clear()
                commits = checkouts = 0
                count = scenario["requests"]
                for index in range(count):
                    if scenario["method"] == "GET":
                        paths = scenario["paths"]
                        response = await client.get(paths[index % len(paths)])
                    else:
                        bodies = scenario["bodies"]
                        response = await client.post(scenario["path"], json=bodies[index % len(bodies)])
                    if response.status_code != scenario["expect"]:
                        raise RuntimeError(
                            f"{scenario['label']}: {response.status_code} {response.text[:300]}"
                        )
                total = sum(statements.values())
                results[scenario["label"]] = {
                    "requests": count,
                    "statements_per_request": total / count,
                    "commits_per_request": commits / count,
                    "checkouts_per_request": checkouts / count,
                    "pre_ping": bool(getattr(app.state.engine.sync_engine.pool, "_pre_ping", False)),
                    "statements": [(name, value / count) for name, value in statements.most_common()],
                }
    return results


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    result = asyncio.run(run(spec))
    Path(spec["output"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
