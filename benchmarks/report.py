"""Machine facts and the Markdown report (docs/benchmarks.md)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

TARGETS = {"create": 0.4, "read": 0.6}
P99_TARGET_MS = 50.0


def machine() -> dict[str, str]:
    model = "unknown"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
    }


def versions(postgres: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("fastapi", "uvicorn", "sqlalchemy", "asyncpg", "pydantic", "httpx"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    found["postgresql server"] = postgres
    return found


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.0f} MiB"


def render(data: dict[str, Any]) -> str:
    """The whole report from one run's figures."""
    results: dict[str, dict[str, Any]] = data["results"]
    settings = data["settings"]
    lines: list[str] = []
    add = lines.append
    title = "# Benchmarks" if not data["quick"] else "# Benchmarks (quick smoke run: figures not meaningful)"
    add(title)
    add("")
    add(
        "case-api's create-case and read-case measured against a bare FastAPI + asyncpg baseline, "
        "in one run on one machine. Written by `python -m benchmarks`; do not edit by hand."
    )
    add("")
    add(f"Run finished {data['finished']} and took {data['elapsed_s']:.0f} s.")
    add("")
    add("## Reproduce")
    add("")
    add("```sh")
    add("# a PostgreSQL server you may create and drop databases on (default shown)")
    add("export BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres")
    add(".venv/bin/python -m benchmarks          # full run, rewrites docs/benchmarks.md")
    add(".venv/bin/python -m benchmarks --quick  # smoke test, report to a temporary file")
    add("```")
    add("")
    add("## Machine and versions")
    add("")
    add("| | |")
    add("|---|---|")
    for key, value in data["machine"].items():
        add(f"| {key} | {value} |")
    for key, value in data["versions"].items():
        add(f"| {key} | {value} |")
    add("")
    add("## Results")
    add("")
    add(
        f"{settings['connections']} concurrent connections, {settings['warmup']:g} s warm-up then "
        f"{settings['duration']:g} s measured per scenario. Latency is per request as the client sees it."
    )
    add("")
    add("| scenario | requests | errors | requests/s | p50 ms | p99 ms | max ms | vs baseline | client CPU |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for op in ("create", "read"):
        for system in ("case-api", "baseline"):
            r = results[f"{system} {op}"]
            ratio = "1.00x" if system == "baseline" else f"{data['ratios'][op]:.2f}x"
            add(
                f"| {system} {op} | {r['requests']} | {r['errors']} | {r['rps']:.0f} | {r['p50_ms']:.1f} "
                f"| {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {ratio} | {r['loadgen_cpu']:.0%} |"
            )
    add("")
    add(
        "*client CPU* is the load generator's own CPU time over its wall time (100% = one full core). "
        "Near 100% the generator, not the server, sets the pace: that figure is a floor for the server."
    )
    add("")
    add("### Targets")
    add("")
    add("| target | figure | verdict |")
    add("|---|---:|---|")
    for op in ("create", "read"):
        ratio = data["ratios"][op]
        add(
            f"| {op} throughput >= {TARGETS[op]}x baseline | {ratio:.2f}x | {_verdict(ratio >= TARGETS[op])} |"
        )
    for op in ("create", "read"):
        p99 = results[f"case-api {op}"]["p99_ms"]
        add(
            f"| case-api {op} p99 <= {P99_TARGET_MS:.0f} ms at {settings['connections']} connections "
            f"| {p99:.1f} ms | {_verdict(p99 <= P99_TARGET_MS)} |"
        )
    add("")
    add("### Memory")
    add("")
    add(
        f"Peak resident set size (VmHWM) over the whole run: case-api {_mib(data['rss']['case-api'])}, "
        f"baseline {_mib(data['rss']['baseline'])}."
    )
    add("")
    add("## Latency against load (case-api read)")
    add("")
    ramp = data["ramp"]
    add(
        f"A short ramp, {settings['ramp_warmup']:g} s warm-up then {settings['ramp_duration']:g} s per step. "
        "In the chart the lower line is p50, the upper line p99 (milliseconds)."
    )
    add("")
    add("| connections | requests/s | p50 ms | p99 ms | errors |")
    add("|---:|---:|---:|---:|---:|")
    for step in ramp:
        add(
            f"| {step['connections']} | {step['rps']:.0f} | {step['p50_ms']:.1f} | {step['p99_ms']:.1f} "
            f"| {step['errors']} |"
        )
    add("")
    top = max([step["p99_ms"] for step in ramp] + [1.0])
    add("```mermaid")
    add("xychart-beta")
    add('    title "case-api GET /api/v1/cases/{id}: latency against concurrent connections"')
    add('    x-axis "connections" [' + ", ".join(str(step["connections"]) for step in ramp) + "]")
    add(f'    y-axis "latency (ms)" 0 --> {top * 1.1:.0f}')
    add("    line [" + ", ".join(f"{step['p50_ms']:.1f}" for step in ramp) + "]")
    add("    line [" + ", ".join(f"{step['p99_ms']:.1f}" for step in ramp) + "]")
    add("```")
    add("")
    add("## What is measured")
    add("")
    for paragraph in data["notes"]:
        add(f"- {paragraph}")
    add("")
    return "\n".join(lines)
