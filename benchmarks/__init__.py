"""Benchmarks: case-api's create-case and read-case against a bare FastAPI + asyncpg baseline.

Run ``python -m benchmarks`` (full run, writes docs/benchmarks.md) or ``python -m benchmarks --quick``
(smoke test, writes a temporary report and prints its path).
"""
