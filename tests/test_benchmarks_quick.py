"""The benchmark suite's quick mode works end to end (a smoke test, not a speed check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import REPO_ROOT
from tests.infra import Postgres


@pytest.mark.timeout(150)
def test_quick_mode_writes_a_report_with_figures(tmp_path: Path, postgres: Postgres) -> None:
    """Runs against the test harness's PostgreSQL server (never skipped)."""
    output = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
        cwd=REPO_ROOT,
        env={**os.environ, "BENCH_DATABASE_URL": postgres.server_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = output.read_text()
    for label in ("case-api create", "baseline create", "case-api read", "baseline read"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert int(cells[1]) > 0, row  # requests
        assert int(cells[2]) == 0, row  # errors
        assert float(cells[3]) > 0, row  # requests/s
    assert "xychart-beta" in text
    assert "VmHWM" in text
