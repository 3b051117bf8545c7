"""Finding PostgreSQL and RabbitMQ for the tests.

1. ``TEST_DATABASE_URL`` / ``TEST_AMQP_URL`` name running servers (CI sets both);
2. otherwise testcontainers starts them when a Docker engine answers;
3. otherwise the run stops with a message naming exactly what to set. Nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

HOW_TO = (
    "Tests need a real PostgreSQL and RabbitMQ. Set\n"
    "  TEST_DATABASE_URL=postgresql://USER@HOST:5432/DBNAME   (a server where USER may CREATE DATABASE)\n"
    "  TEST_AMQP_URL=amqp://guest:guest@HOST:5672/\n"
    "or start a Docker engine so testcontainers can run them."
)


def _start_container(kind: str) -> Any | None:
    """Start a container, or return None when there is no Docker engine (never raise)."""
    try:
        if kind == "postgres":
            try:
                from testcontainers.postgres import PostgresContainer
            except ImportError:  # pragma: no cover - older layout
                return None
            container: Any = PostgresContainer("postgres:16-alpine", driver=None)
        else:
            from testcontainers.rabbitmq import RabbitMqContainer

            container = RabbitMqContainer("rabbitmq:3.13-management-alpine")
        container.start()
        return container
    except Exception:
        return None


@dataclass
class Postgres:
    server_url: str  # postgresql://... as given
    container: Any | None = None

    def database_url(self, name: str) -> str:
        parts = urlsplit(self.server_url)
        return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class RabbitMQ:
    url: str
    container: Any | None = None

    def restart(self) -> None:
        """Stop and start the broker (the relay and consumers must recover by themselves)."""
        if self.container is not None:
            wrapped = self.container.get_wrapped_container()
            wrapped.restart()
            return
        ctl = shutil.which("rabbitmqctl")
        if ctl is None:
            pytest.fail(
                "The broker-restart test needs `rabbitmqctl` on PATH for the RabbitMQ at TEST_AMQP_URL "
                "(or let testcontainers start RabbitMQ)."
            )
        subprocess.run([ctl, "stop_app"], check=True, capture_output=True, timeout=120)
        time.sleep(1.0)
        subprocess.run([ctl, "start_app"], check=True, capture_output=True, timeout=120)
        subprocess.run([ctl, "await_startup"], check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        ctl = shutil.which("rabbitmqctl")
        if self.container is not None:
            self.container.get_wrapped_container().stop()
        elif ctl is not None:
            subprocess.run([ctl, "stop_app"], check=True, capture_output=True, timeout=120)
        else:
            pytest.fail("Stopping the broker needs `rabbitmqctl` on PATH or a testcontainers RabbitMQ.")

    def start(self) -> None:
        ctl = shutil.which("rabbitmqctl")
        if self.container is not None:
            self.container.get_wrapped_container().start()
        elif ctl is not None:
            subprocess.run([ctl, "start_app"], check=True, capture_output=True, timeout=120)
            subprocess.run([ctl, "await_startup"], check=True, capture_output=True, timeout=120)


def find_postgres() -> Postgres:
    if url := os.environ.get("TEST_DATABASE_URL"):
        return Postgres(url)
    container = _start_container("postgres")
    if container is not None:
        return Postgres(container.get_connection_url(), container)
    pytest.exit("No PostgreSQL for the tests.\n" + HOW_TO, returncode=3)
    raise AssertionError  # unreachable


def find_rabbitmq() -> RabbitMQ:
    if url := os.environ.get("TEST_AMQP_URL"):
        return RabbitMQ(url)
    container = _start_container("rabbitmq")
    if container is not None:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5672)
        return RabbitMQ(f"amqp://guest:guest@{host}:{port}/", container)
    pytest.exit("No RabbitMQ for the tests.\n" + HOW_TO, returncode=3)
    raise AssertionError  # unreachable


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
