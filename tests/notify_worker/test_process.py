"""The notify-worker console entry point as a real process: SIGTERM ends it cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import httpx

from shared.settings import REPO_ROOT
from tests.infra import RabbitMQ, free_port, unique_name


def test_worker_process_stops_cleanly_on_sigterm(
    database_url: str, rabbitmq: RabbitMQ, exchange_name: str, amqp_queues: list[str]
) -> None:
    queue = unique_name("test.process")
    amqp_queues.append(queue)
    port = free_port()
    env = {
        **os.environ,
        "NOTIFY_WORKER_ENV": "test",
        "NOTIFY_WORKER_DATABASE_URL": database_url,
        "NOTIFY_WORKER_AMQP_URL": rabbitmq.url,
        "NOTIFY_WORKER_EVENT_EXCHANGE": exchange_name,
        "NOTIFY_WORKER_QUEUE": queue,
        "NOTIFY_WORKER_PORT": str(port),
        "NOTIFY_WORKER_LOG_JSON": "true",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "notify_worker"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        ready = False
        while time.monotonic() < deadline and not ready:
            with contextlib.suppress(httpx.HTTPError):
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            time.sleep(0.2)
        assert ready, "the worker never became ready"
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=40)
        stopped_after = time.monotonic() - began
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # uvicorn re-raises the captured SIGTERM after a complete shutdown, as a process manager expects.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert '"event": "service.stopped"' in output
    assert '"event": "consumer.started"' in output
    assert stopped_after < 35
