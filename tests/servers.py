"""Real HTTP servers inside a test: uvicorn on a free port of 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn


class InTestServer(uvicorn.Server):
    """Leaves the signal handlers to pytest: several servers may share the test's loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def config(app: Any, **options: Any) -> uvicorn.Config:
    """A free port of 127.0.0.1 (or ``host``), uvicorn's own logging off; lifespan on unless
    ``options`` say."""
    return uvicorn.Config(
        app, **{"host": "127.0.0.1", "port": 0, "log_config": None, "lifespan": "on", **options}
    )


def base_url(server: uvicorn.Server) -> str:
    """The address a started server listens on."""
    return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


@contextlib.asynccontextmanager
async def serve(app: Any, **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` in this loop until the block ends; yields its base URL."""
    server = InTestServer(config(app, **options))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped before it started")
            await asyncio.sleep(0.02)
        yield base_url(server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
