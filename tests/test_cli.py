"""`tilbake` answers at once: the commands that need no service load neither FastAPI nor SQLAlchemy."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from shared.settings import REPO_ROOT

HEAVY = ("fastapi", "starlette", "sqlalchemy", "sqlmodel", "case_api", "agreement_api", "notify_worker")

# Runs the command in a fresh interpreter and prints the heavy packages it loaded.
PROBE = """
import contextlib, io, sys
from tilbake.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
heavy = {HEAVY!r}
print(" ".join(sorted({{name.split(".")[0] for name in sys.modules}} & set(heavy))))
"""


@pytest.mark.parametrize(
    "argv", [["token", "--role", "admin", "--scope", "a"], ["--help"], ["token", "--help"]]
)
def test_light_commands_do_not_import_the_web_stack(argv: list[str]) -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", PROBE.format(HEAVY=HEAVY), *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert loaded == "", f"`tilbake {' '.join(argv)}` imported {loaded}"


def test_every_option_has_help() -> None:
    from tilbake.cli import build_parser

    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in commands.choices.items()
        for action in parser._actions
        if not action.help
    ]
    assert missing == []
