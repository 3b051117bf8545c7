"""Load generator, run as its own process: ``python -m benchmarks.loadgen SPEC.json``.

The spec names a method, a base URL (127.0.0.1 only), headers, and either ``paths`` (cycled, GET)
or ``bodies`` (cycled, JSON POST; with ``"once": true`` each is sent once at most, for creates
that may not be repeated). Workers loop until the deadline, the request cap or the last of the
``once`` bodies, whichever comes first; only requests that *start* after the warm-up are recorded.
Prints one JSON object.

The client is a bare HTTP/1.1 keep-alive client on asyncio streams, one connection per worker,
with every request's bytes built before the clock starts. A general-purpose client (httpx) spent
a whole core of this two-core machine on its own bookkeeping at a few hundred requests per second
and so set the pace of the fastest server; this one spends a small fraction of that per request.
It speaks just enough HTTP for the servers measured here: status line, headers, a body framed by
``Content-Length`` or chunked, and ``Connection: close`` (it then reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import resource
import sys
import time
from typing import Any
from urllib.parse import urlsplit

REQUEST_TIMEOUT = 10.0
MAX_REQUESTS = 2_000_000  # a hard cap besides the deadline


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> int:
        """Send one request, read the whole answer; its status code."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        assert reader is not None
        writer.write(raw)
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        chunked = close = False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            while True:
                size = int((await reader.readline()).split(b";", 1)[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await reader.readexactly(length)
        if close:
            await self.close()
        return status


def build_requests(spec: dict[str, Any], host: str, port: int) -> list[bytes]:
    """Every distinct request of the spec as the bytes sent on the wire."""
    method: str = spec["method"]
    headers: dict[str, str] = {
        "Host": f"{host}:{port}",
        "Accept": "application/json",
        **spec.get("headers", {}),
    }
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    if method == "GET":
        return [f"GET {path} HTTP/1.1\r\n{lines}\r\n".encode() for path in spec["paths"]]
    requests = []
    for body in spec["bodies"]:
        payload = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"{method} {spec['path']} HTTP/1.1\r\n{lines}Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        requests.append(head.encode() + payload)
    return requests


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(spec["base_url"])
    if parts.hostname != "127.0.0.1":
        raise SystemExit("the load generator only talks to 127.0.0.1")
    host, port = parts.hostname, parts.port or 80
    connections: int = spec["connections"]
    warmup: float = spec["warmup"]
    duration: float = spec["duration"]
    expect: int = spec["expect"]
    built = build_requests(spec, host, port)
    requests = iter(built) if spec.get("once") else itertools.cycle(built)
    exhausted = False

    latencies: list[float] = []
    errors = 0
    statuses: dict[str, int] = {}
    issued = 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + duration

    async def worker() -> None:
        nonlocal errors, issued, exhausted
        connection = Connection(host, port)
        try:
            while issued < MAX_REQUESTS:
                began = time.perf_counter()
                if began >= deadline:
                    return
                raw = next(requests, None)
                if raw is None:
                    exhausted = True
                    return
                issued += 1
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT):
                        status = await connection.request(raw)
                except (OSError, ValueError, IndexError, TimeoutError, asyncio.IncompleteReadError):
                    status = 0
                    await connection.close()
                elapsed = time.perf_counter() - began
                if began < measure_from:
                    continue
                latencies.append(elapsed)
                key = str(status)
                statuses[key] = statuses.get(key, 0) + 1
                if status != expect:
                    errors += 1
        finally:
            await connection.close()

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
        "exhausted": exhausted,  # the once bodies ran out before the deadline
    }


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    sys.stdout.write(json.dumps(asyncio.run(run(spec))) + "\n")


if __name__ == "__main__":
    main()
