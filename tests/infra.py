"""Finding PostgreSQL and RabbitMQ for the tests.

1. ``TEST_DATABASE_URL`` / ``TEST_AMQP_URL`` name running servers;
2. otherwise testcontainers starts them when a Docker engine answers (images from
   ``TILBAKE_POSTGRES_IMAGE`` / ``TILBAKE_RABBITMQ_IMAGE``, official ones by default);
3. otherwise the servers on this machine's default addresses, when they answer;
4. otherwise the run stops with a message naming exactly what to set. Nothing is skipped.
A container that fails to start stops the run with its cause; it never falls through.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

HOW_TO = (
    "Tests need a real PostgreSQL and RabbitMQ. Start a Docker engine so testcontainers can run "
    "them, run them on this machine's default ports, or set\n"
    "  TEST_DATABASE_URL=postgresql://USER@HOST:5432/DBNAME   (a server where USER may CREATE DATABASE)\n"
    "  TEST_AMQP_URL=amqp://guest:guest@HOST:5672/"
)
LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
POSTGRES_IMAGE = os.environ.get("TILBAKE_POSTGRES_IMAGE", "postgres:16-alpine")
RABBITMQ_IMAGE = os.environ.get("TILBAKE_RABBITMQ_IMAGE", "rabbitmq:3.13-management-alpine")
# Durability is not under test: a faster server for the suite (the official image takes these too).
POSTGRES_COMMAND = (
    "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
)


def docker_answers() -> bool:
    """True when a Docker engine answers on the environment's socket (DOCKER_HOST or the default)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, on ``host`` (``0.0.0.0`` for a container's published port)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ports_free(base: int, count: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on any of the ``count`` ports from ``base`` on ``host``."""
    sockets = []
    try:
        for port in range(base, base + count):
            sock = socket.socket()
            sockets.append(sock)  # closed below even when bind fails
            sock.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()


def free_base_port(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` free consecutive ports, from a random start below the ephemeral range
    (32768 on Linux), so that test workers starting side by side rarely pick the same ones."""
    for _ in range(500):
        base = random.randrange(20000, 32000 - count)
        if ports_free(base, count, host):
            return base
    raise RuntimeError(f"no {count} free consecutive ports on {host}")


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _start_container(kind: str) -> Any:
    """Start a container on a fixed host port (kept across restarts); stop the run with the cause
    if it cannot start."""
    image = POSTGRES_IMAGE if kind == "postgres" else RABBITMQ_IMAGE
    try:
        container: Any
        if kind == "postgres":
            from testcontainers.community.postgres import PostgresContainer

            container = PostgresContainer(image, driver=None).with_command(POSTGRES_COMMAND)
            container.with_bind_ports(5432, free_port("0.0.0.0"))
        else:
            from testcontainers.community.rabbitmq import RabbitMqContainer

            container = RabbitMqContainer(image)
            container.with_bind_ports(5672, free_port("0.0.0.0"))
        container.start()
        return container
    except Exception as error:
        pytest.exit(
            f"A Docker engine answers, but the {kind} container ({image}) did not start: "
            f"{type(error).__name__}: {error}\n"
            "Set TILBAKE_POSTGRES_IMAGE / TILBAKE_RABBITMQ_IMAGE to images this engine has "
            "(deploy/images/build.sh builds them from Debian packages), or see:\n" + HOW_TO,
            returncode=3,
        )
        raise AssertionError from error  # unreachable


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
            self.container.get_wrapped_container().restart()
            self.container.readiness_probe()  # same host port: explicitly bound
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
            self.container.readiness_probe()
        elif ctl is not None:
            subprocess.run([ctl, "start_app"], check=True, capture_output=True, timeout=120)
            subprocess.run([ctl, "await_startup"], check=True, capture_output=True, timeout=120)


def find_postgres() -> Postgres:
    if url := os.environ.get("TEST_DATABASE_URL"):
        return Postgres(url)
    if docker_answers():
        container = _start_container("postgres")
        return Postgres(container.get_connection_url(), container)
    if _answers("127.0.0.1", 5432):
        return Postgres(LOCAL_DATABASE_URL)
    pytest.exit("No PostgreSQL for the tests.\n" + HOW_TO, returncode=3)
    raise AssertionError  # unreachable


def find_rabbitmq() -> RabbitMQ:
    if url := os.environ.get("TEST_AMQP_URL"):
        return RabbitMQ(url)
    if docker_answers():
        container = _start_container("rabbitmq")
        host, port = container.get_container_host_ip(), container.get_exposed_port(5672)
        return RabbitMQ(f"amqp://guest:guest@{host}:{port}/", container)
    if _answers("127.0.0.1", 5672):
        return RabbitMQ(LOCAL_AMQP_URL)
    pytest.exit("No RabbitMQ for the tests.\n" + HOW_TO, returncode=3)
    raise AssertionError  # unreachable


def uses_containers() -> bool:
    """Whether find_postgres / find_rabbitmq will start containers."""
    return not (os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_AMQP_URL")) and docker_answers()


def describe() -> str:
    """Which path the run takes, for the pytest header."""
    if os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_AMQP_URL"):
        return "PostgreSQL and RabbitMQ from TEST_DATABASE_URL / TEST_AMQP_URL"
    if docker_answers():
        return f"testcontainers: {POSTGRES_IMAGE}, {RABBITMQ_IMAGE}"
    return "this machine's PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672)"


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
