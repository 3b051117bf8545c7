#!/usr/bin/env python3
"""Regenerate one (unreleased) Alembic revision from the current models.

    .venv/bin/python scripts/regenerate_migration.py REVISION_ID "message"

Upgrades a scratch PostgreSQL database to the revision's parent, deletes the revision's file,
autogenerates it again under the same id, formats it and drops the scratch database. Only for
revisions not yet applied anywhere that matters; released revisions are never rewritten.
Needs DATABASE_URL (any database on the server; a scratch one is created next to it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
# Which tables each unreleased revision owns, so regenerating one never swallows another's.
OWNED_TABLES: dict[str, tuple[str, str]] = {
    "c0a5e0000001": ("case_", "case_market_"),  # (include prefixes, exclude prefixes)
    "a9e000000001": ("agreement_", ""),
    "b5e000000001": ("case_market_", ""),
    "c7e000000001": ("notify_", ""),
    "d1e000000001": ("notify_", ""),
}
VERSIONS = ROOT / "migrations" / "versions"
BIN = Path(sys.executable).parent


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    revision, message = sys.argv[1], sys.argv[2]
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    files = [path for path in VERSIONS.glob("*.py") if f"_{revision}_" in path.name]
    parent = None
    for path in files:
        for line in path.read_text().splitlines():
            if line.startswith("down_revision"):
                parent = line.split("=", 1)[1].strip().strip("'\"")
                parent = None if parent in ("None", "") else parent
    scratch = f"tilbake_regen_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(server)
    scratch_url = urlunsplit(parts._replace(path=f"/{scratch}"))
    admin = ["psql", server.replace("+asyncpg", ""), "-qc"]
    subprocess.run([*admin, f'CREATE DATABASE "{scratch}"'], check=True)
    include, exclude = OWNED_TABLES.get(revision, ("", ""))
    env = dict(
        os.environ,
        DATABASE_URL=scratch_url,
        LOG_LEVEL="WARNING",
        MIGRATION_INCLUDE_PREFIXES=include,
        MIGRATION_EXCLUDE_PREFIXES=exclude,
    )
    try:
        for path in files:
            path.unlink()
        if parent:
            subprocess.run([BIN / "alembic", "upgrade", parent], check=True, cwd=ROOT, env=env)
        else:
            subprocess.run([BIN / "alembic", "upgrade", "head"], check=True, cwd=ROOT, env=env)
        subprocess.run(
            [BIN / "alembic", "revision", "--autogenerate", "--rev-id", revision, "-m", message],
            check=True,
            cwd=ROOT,
            env=env,
        )
        subprocess.run([BIN / "ruff", "format", "-q", str(VERSIONS)], check=True, cwd=ROOT)
        subprocess.run([BIN / "ruff", "check", "-q", "--fix", str(VERSIONS)], check=False, cwd=ROOT)
    finally:
        subprocess.run([*admin, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
