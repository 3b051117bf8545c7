#!/usr/bin/env python3
"""Bootstrap and run the project with nothing but Python 3.11+.

    python3 dev.py run     # all three services in one process (SQLite, in-process bus, demo data)
    python3 dev.py test    # the test suite against real PostgreSQL and RabbitMQ

The first call creates `.venv/`, installs a pinned `uv` into it and syncs the locked dependencies
from `uv.lock`, so installs are reproducible. Later calls reuse the environment and only resync
when `uv.lock` or `pyproject.toml` changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("TILBAKE_VENV", ROOT / ".venv"))
UV_VERSION = "0.13.9"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("uv.lock", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    digest.update(UV_VERSION.encode())
    return digest.hexdigest()


def ensure_env(*, dev: bool) -> None:
    """Create or update .venv from uv.lock. ``run`` needs the runtime packages; ``test`` also the
    dev tools. An environment synced for tests serves ``run`` as it is, and ``run`` never removes
    the dev tools a previous ``test`` installed."""
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    stamp_file = VENV / ".tilbake-sync"
    digest = _lock_digest()
    synced = stamp_file.read_text().split() if stamp_file.exists() else []
    if synced and synced[0] == digest and ("dev" in synced[1:] or not dev):
        return
    if not (BIN / "python").exists():
        print(f"creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    uv = BIN / "uv"
    if not uv.exists():
        subprocess.run(
            [str(BIN / "python"), "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"], check=True
        )
    cmd = [str(uv), "sync", "--frozen", "--quiet"]
    if not dev:
        cmd += ["--no-dev", "--inexact"]
    env = dict(os.environ, UV_PROJECT_ENVIRONMENT=str(VENV))
    print("installing locked dependencies ...", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    stamp_file.write_text(f"{digest} {'dev' if dev else 'run'}")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "env"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_env(dev=command in {"test", "env"})
    if command == "env":
        return 0
    if command == "run":
        args = [str(BIN / "tilbake"), "embedded", *rest]
    else:
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    os.chdir(ROOT)
    if os.name == "nt":
        return subprocess.call(args)
    os.execv(args[0], args)
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
