"""Starting the embedded mode (`python3 dev.py run`'s process) in a test, and reading what it prints."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from shared.settings import REPO_ROOT

# case-api, agreement-api, notify-worker and the demo receiver, from the base port up.
PORTS = 4
# The start banner's first line.
BANNER = "tilbake is running"


@dataclass
class Embedded:
    base: int
    data_dir: Path
    began: float  # time.monotonic() when the process was started
    elapsed: float = 0.0  # seconds until every port answered /healthz
    banner: float = 0.0  # seconds until the start banner was printed
    lines: list[str] = field(default_factory=list)  # the process's output, as it comes
    arrived: list[float] = field(default_factory=list)  # time.monotonic() of each line, in step

    def url(self, offset: int) -> str:
        return f"http://127.0.0.1:{self.base + offset}"


def environment() -> dict[str, str]:
    """This process's environment without service settings, which would override the embedded ones."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CASE_API_", "AGREEMENT_API_", "NOTIFY_WORKER_"))
    }


@contextlib.contextmanager
def run_embedded(
    data_dir: Path, base: int, *, ready_within: float = 15, banner_within: float = 60
) -> Iterator[Embedded]:
    """`tilbake embedded` on ``base`` and up with ``data_dir``, until every port answers /healthz and
    the start banner is printed; stopped with SIGINT at the end, which must end it cleanly."""
    began = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tilbake.cli",
            "embedded",
            "--base-port",
            str(base),
            "--data-dir",
            str(data_dir),
        ],
        cwd=REPO_ROOT,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Embedded(base=base, data_dir=data_dir, began=began)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.arrived.append(time.monotonic())  # before the line: a reader sees its time
            running.lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        ready = False
        while time.monotonic() - began < ready_within:
            if process.poll() is not None:
                reader.join(timeout=5)
                pytest.fail(f"embedded mode exited: {''.join(running.lines)}")
            try:
                if all(
                    httpx.get(f"{running.url(offset)}/healthz", timeout=0.5).status_code == 200
                    for offset in range(PORTS)
                ):
                    ready = True
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert ready, f"not every service answered /healthz within {ready_within} seconds"
        running.elapsed = time.monotonic() - began
        # The banner comes once every service is up (the demo market is added beside them after it).
        while not any(line.startswith(BANNER) for line in running.lines):
            if process.poll() is not None or time.monotonic() - began > banner_within:
                pytest.fail(f"no start banner within {banner_within} seconds: {''.join(running.lines)}")
            time.sleep(0.05)
        running.banner = time.monotonic() - began
        print(
            f"\nembedded mode: all services and the receiver answered /healthz after {running.elapsed:.2f} s,"
            f" the banner came after {running.banner:.2f} s"
        )
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
        assert process.returncode == 0, "".join(running.lines)
