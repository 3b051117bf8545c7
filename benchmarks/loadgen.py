"""Load generator, run as its own process: ``python -m benchmarks.loadgen SPEC.json``.

The spec names a method, a base URL (127.0.0.1 only), headers, and either ``paths`` (cycled, GET)
or ``bodies`` (cycled, JSON POST). Workers loop until the deadline or the request cap, whichever
comes first; only requests that *start* after the warm-up are recorded. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import resource
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

REQUEST_TIMEOUT = 10.0
MAX_REQUESTS = 2_000_000  # a hard cap besides the deadline


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    base_url: str = spec["base_url"]
    if urlsplit(base_url).hostname != "127.0.0.1":
        raise SystemExit("the load generator only talks to 127.0.0.1")
    method: str = spec["method"]
    connections: int = spec["connections"]
    warmup: float = spec["warmup"]
    duration: float = spec["duration"]
    expect: int = spec["expect"]
    headers: dict[str, str] = spec.get("headers", {})
    items = itertools.cycle(spec["paths"] if method == "GET" else spec["bodies"])
    path: str = spec.get("path", "")

    latencies: list[float] = []
    errors = 0
    statuses: dict[str, int] = {}
    issued = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + duration

    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=REQUEST_TIMEOUT
    ) as client:

        async def worker() -> None:
            nonlocal errors, issued
            while issued < MAX_REQUESTS:
                began = time.perf_counter()
                if began >= deadline:
                    return
                issued += 1
                item = next(items)
                try:
                    if method == "GET":
                        response = await client.get(item)
                    else:
                        response = await client.post(path, json=item)
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                elapsed = time.perf_counter() - began
                if began < measure_from:
                    continue
                latencies.append(elapsed)
                key = str(status)
                statuses[key] = statuses.get(key, 0) + 1
                if status != expect:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    # Requests that started before the deadline may finish after it: measure to the last answer.
    measured = max(time.perf_counter() - measure_from, 1e-9)
    latencies.sort()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - start
    return {
        "connections": connections,
        "duration_s": measured,
        "requests": len(latencies),
        "errors": errors,
        "statuses": statuses,
        "rps": len(latencies) / measured,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] * 1000) if latencies else 0.0,
        "loadgen_cpu": (usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime) / wall,
    }


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    sys.stdout.write(json.dumps(asyncio.run(run(spec))) + "\n")


if __name__ == "__main__":
    main()
