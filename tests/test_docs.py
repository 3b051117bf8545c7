"""The README and the architecture page stay true to the code they describe."""

from __future__ import annotations

import re

from shared.settings import REPO_ROOT
from tilbake.cli import configuration_table

README = REPO_ROOT / "README.md"
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
TABLE_START = "<!-- config-table:start -->"
TABLE_END = "<!-- config-table:end -->"
RUN_COMMAND = "python3 dev.py run"
TEST_COMMAND = "python3 dev.py test"
SERVICE_PREFIXES = ("CASE_API_", "AGREEMENT_API_", "NOTIFY_WORKER_")

_FENCED_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_MERMAID_BLOCK = re.compile(r"^```mermaid[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _table_in_readme(text: str) -> str:
    assert text.count(TABLE_START) == 1, f"README needs exactly one {TABLE_START} line"
    assert text.count(TABLE_END) == 1, f"README needs exactly one {TABLE_END} line"
    start = text.index(TABLE_START) + len(TABLE_START)
    end = text.index(TABLE_END)
    assert start < end, "the config-table markers are in the wrong order"
    return text[start:end].strip()


def _variables_in_table(table: str) -> set[str]:
    return {match for match in _INLINE_CODE.findall(table) if match.startswith(SERVICE_PREFIXES)}


def test_readme_configuration_table_matches_the_settings_classes() -> None:
    expected = configuration_table().strip()
    assert _table_in_readme(_readme()) == expected, (
        "README's configuration table is out of date: run `.venv/bin/tilbake config-table` and paste "
        f"its output between {TABLE_START} and {TABLE_END}"
    )


def test_readme_opens_with_the_run_and_test_commands_in_code_blocks() -> None:
    head = "\n".join(_readme().splitlines()[:40])
    blocks = _FENCED_BLOCK.findall(head)
    run_blocks = [i for i, block in enumerate(blocks) if RUN_COMMAND in block]
    test_blocks = [i for i, block in enumerate(blocks) if TEST_COMMAND in block]
    assert run_blocks, f"`{RUN_COMMAND}` must be in a fenced code block within the first 40 lines"
    assert test_blocks, f"`{TEST_COMMAND}` must be in a fenced code block within the first 40 lines"
    assert run_blocks[0] < test_blocks[0], "the run command comes first"
    assert not set(run_blocks) & set(test_blocks), "each command has a code block of its own"


def test_readme_says_where_the_tests_find_their_servers() -> None:
    """The test command takes no variables; the paths it can take are named right below it."""
    head = "\n".join(_readme().splitlines()[:60])
    test_block = next(block for block in _FENCED_BLOCK.findall(head) if TEST_COMMAND in block)
    assert test_block.strip() == TEST_COMMAND
    for path in (
        "TEST_DATABASE_URL=",
        "TEST_AMQP_URL=",
        "testcontainers",
        "127.0.0.1:5432",
        "127.0.0.1:5672",
    ):
        assert path in head, f"the README's first 60 lines do not mention {path}"


def test_every_service_variable_the_readme_mentions_exists() -> None:
    text = _readme()
    known = _variables_in_table(configuration_table())
    mentioned = set()
    for code in _INLINE_CODE.findall(text):
        if not code.startswith(SERVICE_PREFIXES):
            continue
        name = _VARIABLE.match(code)
        assert name is not None
        if name.group(0) in SERVICE_PREFIXES:
            continue  # the bare prefix, e.g. `CASE_API_`
        mentioned.add(name.group(0))
    unknown = sorted(mentioned - known)
    assert not unknown, f"README mentions variables no settings class defines: {unknown}"


def test_architecture_page_exists_with_non_empty_mermaid_diagrams() -> None:
    assert ARCHITECTURE.is_file(), "docs/architecture.md is missing"
    blocks = _MERMAID_BLOCK.findall(ARCHITECTURE.read_text(encoding="utf-8"))
    assert blocks, "docs/architecture.md has no Mermaid diagram"
    for block in blocks:
        lines = [line for line in block.splitlines() if line.strip() and not line.strip().startswith("%%")]
        assert len(lines) >= 2, f"an empty Mermaid block (only a diagram type?): {block!r}"


def test_readme_mermaid_diagrams_are_not_empty() -> None:
    blocks = _MERMAID_BLOCK.findall(_readme())
    assert blocks, "README has no Mermaid architecture diagram"
    assert all(block.strip() for block in blocks)
