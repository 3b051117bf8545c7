"""Where a notify-worker's wall time goes: ``python -m benchmarks.stages SPEC.json``.

A sampling profiler sees CPU, but a delivery worker mostly waits: on PostgreSQL, on agreement-api,
on the receiver. This harness runs the real worker application (``notify_worker.main.create_app``
with the same ``NOTIFY_WORKER_*`` environment the worker process gets, its real lifespan, its real
dispatcher and clients) in a process of its own, and wraps every coroutine method of the running
dispatcher, of its ports (agreement-api and case-api clients, the webhook sender) and the
coroutine functions the dispatcher module calls (``claim_due``, ``release_stale_claims``, those of
the worker's modules it calls through, such as ``health``) with a timer. Nothing else changes: the timers only add two clock reads per call.

Stages nest (``attempt_next`` includes the lease, the send and the record), so their shares of the
wall time add up to more than 100 %. The spec names the database, the environment, how many
notices to wait for, a deadline, a file that says "ready" once the dispatcher is running, and the
output file for the timings.

A spec may also ask for ``caches``: a sketch of a proposed fix, applied to the running worker from
the outside before the timers go on, so its effect can be measured before anyone changes the
worker's code. ``signing_keys`` keeps an endpoint's keys, ``endpoints`` an organization's endpoint
list, for ``cache_seconds``. ``attempts_at_once`` makes each of the dispatcher's ``attempt_next``
calls run that many attempts side by side (each leases its own delivery with ``FOR UPDATE SKIP
LOCKED`` in its own transaction, exactly as two workers would), a sketch of concurrent attempts.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

FINAL_STATES = ("delivered", "dead")


class Timers:
    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {}
        self.first_seen: dict[str, int] = {}

    def wrap(self, name: str, function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        self.first_seen.setdefault(name, len(self.first_seen))

        @functools.wraps(function)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                self.calls.setdefault(name, []).append(time.perf_counter() - began)

        return timed


def _coroutine_methods(target: Any) -> list[str]:
    names = []
    for name in dir(type(target)):
        if name.startswith("__") or name in ("run", "aclose"):
            continue
        if inspect.iscoroutinefunction(getattr(type(target), name, None)):
            names.append(name)
    return names


CACHEABLE = {"signing_keys": "signing_keys", "endpoints": "endpoints_for"}


def cached(function: Callable[..., Awaitable[Any]], seconds: float) -> Callable[..., Awaitable[Any]]:
    """``function``'s answer per first argument (an endpoint or organization id), kept ``seconds``.
    Callers that miss at the same moment share one request (a failed one is not kept)."""
    kept: dict[Any, tuple[float, asyncio.Future[Any]]] = {}

    @functools.wraps(function)
    async def lookup(key: Any, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        hit = kept.get(key)
        if hit is None or now - hit[0] >= seconds or (hit[1].done() and hit[1].exception() is not None):
            hit = (now, asyncio.ensure_future(function(key, *args, **kwargs)))
            kept[key] = hit
        return await asyncio.shield(hit[1])

    return lookup


def apply_caches(app: Any, caches: list[str], seconds: float) -> None:
    """Put the named caches in front of the dispatcher's agreement-api client."""
    endpoints = app.state.dispatcher.endpoints
    for name in caches:
        method = CACHEABLE[name]
        setattr(endpoints, method, cached(getattr(endpoints, method), seconds))


def apply_concurrency(app: Any, at_once: int) -> None:
    """``attempt_next`` runs ``at_once`` attempts side by side; True when any of them had work."""
    if at_once <= 1:
        return
    dispatcher = app.state.dispatcher
    attempt = dispatcher.attempt_next

    @functools.wraps(attempt)
    async def attempts(*args: Any, **kwargs: Any) -> bool:
        return any(await asyncio.gather(*(attempt(*args, **kwargs) for _ in range(at_once))))

    dispatcher.attempt_next = attempts


def instrument(app: Any, timers: Timers) -> list[str]:
    """Wrap the running dispatcher, its ports and its module's coroutine functions; what was wrapped."""
    import notify_worker.dispatcher as module

    dispatcher = app.state.dispatcher
    wrapped: list[str] = []
    for name, value in list(vars(module).items()):
        if (
            inspect.iscoroutinefunction(value)
            and getattr(value, "__module__", "").startswith("notify_worker.")
            and value.__module__ != module.__name__
        ):
            setattr(module, name, timers.wrap(name, value))
            wrapped.append(name)
        elif inspect.ismodule(value) and value.__name__.startswith("notify_worker."):
            # Called as ``health.seen_active(...)``: the attribute is looked up at each call.
            short = value.__name__.removeprefix("notify_worker.")
            for function_name, function in list(vars(value).items()):
                if inspect.iscoroutinefunction(function) and function.__module__ == value.__name__:
                    setattr(value, function_name, timers.wrap(f"{short}.{function_name}", function))
                    wrapped.append(f"{short}.{function_name}")
    ports: list[tuple[str, Any]] = [("dispatcher", dispatcher)]
    for attribute, value in vars(dispatcher).items():
        if not attribute.startswith("_") and _coroutine_methods(value) and attribute != "sessionmaker":
            ports.append((type(value).__name__, value))
    state_ports = getattr(app.state, "ports", None)
    for value in getattr(state_ports, "__dict__", {}).values():
        if all(value is not seen for _, seen in ports):
            ports.append((type(value).__name__, value))
    for owner, target in ports:
        for name in _coroutine_methods(target):
            label = name if owner == "dispatcher" else f"{owner}.{name}"
            try:
                setattr(target, name, timers.wrap(label, getattr(target, name)))
            except AttributeError:  # a class with __slots__: left as it is
                continue
            wrapped.append(label)
    return wrapped


async def finished(url: str, batch: int) -> int:
    """Notices of this batch (its own ``milestone_days``) that are delivered or dead."""
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM notify_notice WHERE milestone_days = $1 AND state = ANY($2::text[])",
                batch,
                list(FINAL_STATES),
            )
        )
    finally:
        await conn.close()


def _read_due(path: Path) -> float | None:
    """The moment the batch falls due, once the suite has written it."""
    return float(path.read_text()) if path.exists() else None


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ.update(spec["env"])
    from notify_worker.config import Settings
    from notify_worker.main import create_app

    app = create_app(Settings())
    timers = Timers()
    started_at = time.time()
    async with app.router.lifespan_context(app):
        if getattr(app.state, "dispatcher", None) is None:
            raise RuntimeError("the dispatcher did not start")
        apply_caches(app, spec.get("caches", []), float(spec.get("cache_seconds", 5.0)))
        apply_concurrency(app, int(spec.get("attempts_at_once", 1)))
        wrapped = instrument(app, timers)
        await asyncio.to_thread(Path(spec["ready_file"]).write_text, "ready")
        deadline = time.monotonic() + spec["deadline_s"]
        due_at: float | None = None
        while time.monotonic() < deadline:
            if due_at is None:
                due_at = await asyncio.to_thread(_read_due, Path(spec["due_file"]))
            if due_at is not None and await finished(spec["database_url"], spec["batch"]) >= spec["notices"]:
                break
            await asyncio.sleep(0.1)
        ended = time.time()
    wall = ended - (due_at or started_at)
    stages = [
        {
            "stage": name,
            "calls": len(samples),
            "total_s": sum(samples),
            "mean_ms": sum(samples) / len(samples) * 1000 if samples else 0.0,
            "share": sum(samples) / wall if wall > 0 else 0.0,
        }
        for name, samples in sorted(timers.calls.items(), key=lambda item: timers.first_seen[item[0]])
    ]
    return {"wall_s": wall, "stages": stages, "wrapped": wrapped}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    result = asyncio.run(run(spec))
    Path(spec["output"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
