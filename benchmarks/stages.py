"""Where a notify-worker's wall time goes: ``python -m benchmarks.stages SPEC.json``.

A sampling profiler sees CPU, but a delivery worker mostly waits: on PostgreSQL, on agreement-api,
on case-api, on the receiver. This harness runs the real worker application
(``notify_worker.main.create_app`` with the same ``NOTIFY_WORKER_*`` environment the worker process
gets, its real lifespan, its real dispatcher, endpoint cache and clients) in a process of its own,
and wraps with a timer every coroutine method of the running dispatcher (``run_once``, ``plan``,
``_plan_all``, ``attempt_due``, ``_lease``, ``_attempt``, ``_send``, ``_record``,
``finish_notices``, ...), of its ports (the endpoint cache, the agreement-api and case-api clients
behind it, the webhook sender) and the coroutine functions the dispatcher module calls (its own
``_ask``, ``claim_due``, ``release_stale_claims``, ``escalate_overdue``, those of the worker's modules
it calls through, such as ``health``). Whatever the dispatcher has now is timed by name, so a
renamed step shows up under its new name rather than going missing. Nothing else changes: the
timers only add two clock reads per call.

Stages nest (``attempt_due`` includes the lease and the attempts, each ``_attempt`` its send and
its record) and attempts run side by side, so their shares of the wall time add up to more than
100 %. The spec names the database, the environment, how many notices to wait for, a deadline, a
file that says "ready" once the dispatcher is running, and the output file for the timings.
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


def instrument(app: Any, timers: Timers) -> list[str]:
    """Wrap the running dispatcher, its ports and its module's coroutine functions; what was wrapped."""
    import notify_worker.deliveries.dispatcher as module

    dispatcher = app.state.dispatcher
    wrapped: list[str] = []
    for name, value in list(vars(module).items()):
        if inspect.iscoroutinefunction(value) and getattr(value, "__module__", "").startswith(
            "notify_worker."
        ):
            # Imported ones (``claim_due``) and the module's own (``_ask``): looked up at each call.
            setattr(module, name, timers.wrap(name, value))
            wrapped.append(name)
        elif inspect.ismodule(value) and value.__name__.startswith("notify_worker."):
            # Called as ``health.seen_active(...)``: the attribute is looked up at each call.
            short = value.__name__.rpartition(".")[2]  # the label names the module, not its package
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
