"""Sampling profiles of running services with py-spy (a dev dependency), and their summaries.

py-spy attaches to a process by pid and samples its Python stacks without changing it; with
``--nonblocking`` the target is never paused, so the profiled run's figures stay close to an
unprofiled one. Idle samples (a thread waiting on the event loop's selector) are left out: the
profile says where the *CPU* time goes. Where wall time goes in the worker is measured separately
(benchmarks.stages).

A summary has three views of the same samples:

- by library: the file of the innermost frame (SQLAlchemy, asyncpg, the HTTP client, logging, ...);
- by project function: each sample is billed to the innermost frame in the project's own code
  (``notify_worker``, ``case_api``, ``agreement_api``, ``shared``), i.e. which of our functions
  caused the work, whatever library ran it;
- the hottest leaf functions.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.api import child_options

PROJECT_PACKAGES = ("notify_worker/", "case_api/", "agreement_api/", "shared/", "benchmarks/")
LIBRARIES = (
    ("sqlalchemy/", "SQLAlchemy"),
    ("asyncpg/", "asyncpg"),
    ("httpx/", "HTTP client (httpx, httpcore, h11)"),
    ("httpcore/", "HTTP client (httpx, httpcore, h11)"),
    ("h11/", "HTTP client (httpx, httpcore, h11)"),
    ("anyio/", "HTTP client (httpx, httpcore, h11)"),
    ("structlog/", "logging (structlog, logging)"),
    ("logging/", "logging (structlog, logging)"),
    ("pydantic", "pydantic"),
    ("fastapi/", "ASGI (uvicorn, starlette, fastapi)"),
    ("starlette/", "ASGI (uvicorn, starlette, fastapi)"),
    ("uvicorn/", "ASGI (uvicorn, starlette, fastapi)"),
    ("httptools", "ASGI (uvicorn, starlette, fastapi)"),
    ("jose/", "JWT (python-jose, cryptography)"),
    ("cryptography/", "JWT (python-jose, cryptography)"),
    ("json/", "json"),
    ("asyncio/", "asyncio"),
    ("ssl.py", "asyncio"),
    ("selectors.py", "asyncio"),
)


def py_spy_path() -> str | None:
    """py-spy from the virtual environment beside this interpreter, else from PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


@dataclass
class Recording:
    name: str
    pid: int
    output: Path
    process: subprocess.Popen[bytes] | None
    error: str | None = None

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            _, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
            self.error = "py-spy did not finish in time"
            return
        if self.process.returncode != 0 or not self.output.exists():
            self.error = (stderr or b"").decode(errors="replace").strip()[-500:] or "py-spy failed"


def record(name: str, pid: int, output: Path, *, seconds: int, rate: int = 100) -> Recording:
    """Start sampling ``pid`` for ``seconds`` in the background."""
    binary = py_spy_path()
    if binary is None:
        return Recording(name, pid, output, None, error="py-spy is not installed (uv sync installs it)")
    process = subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, seconds)),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nolineno",
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **child_options(),
    )
    return Recording(name, pid, output, process)


@dataclass
class Summary:
    name: str
    samples: int = 0
    by_library: list[tuple[str, float]] = field(default_factory=list)
    by_project_function: list[tuple[str, float]] = field(default_factory=list)
    hottest: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None


def _is_project(frame: str) -> bool:
    """A frame of the project's own code; the entry point (``__main__.py``, which only starts the
    server and its event loop) does not count."""
    if "__main__.py" in frame:
        return False
    return any(f"({package}" in frame or f"/{package}" in frame for package in PROJECT_PACKAGES)


def _library(frame: str) -> str:
    for marker, label in LIBRARIES:
        if marker in frame:
            return label
    if _is_project(frame):
        return "project code"
    return "other (interpreter, stdlib)"


def _short(frame: str) -> str:
    """``name (path/to/module.py)`` with the path cut to the package onwards."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in (*PROJECT_PACKAGES, "site-packages/", "python3.11/"):
        if marker in where:
            where = where[where.index(marker) :].removeprefix("site-packages/").removeprefix("python3.11/")
            break
    return f"{name} ({where})" if where else name


def summarize(recording: Recording, *, top: int = 12) -> Summary:
    """Read py-spy's raw (collapsed-stack) output into the three views."""
    summary = Summary(recording.name, error=recording.error)
    if recording.error or not recording.output.exists():
        return summary
    library: Counter[str] = Counter()
    project: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in recording.output.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        summary.samples += count
        leaf = frames[-1]
        leaves[_short(leaf)] += count
        library[_library(leaf)] += count
        owner = next((frame for frame in reversed(frames) if _is_project(frame)), None)
        if owner is None:
            label = "(no project frame: server or event loop)"
        elif "Middleware.__call__" in owner:
            # The middlewares wrap the whole app: below them and above any handler is the framework.
            label = "(framework below the middlewares: routing, dependencies, validation, serialization)"
        else:
            label = _short(owner)
        project[label] += count
    total = max(summary.samples, 1)

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(key, value / total) for key, value in counter.most_common(top)]

    summary.by_library = shares(library)
    summary.by_project_function = shares(project)
    summary.hottest = shares(leaves)
    return summary
