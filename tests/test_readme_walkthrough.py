"""The README's walkthrough, "From a new case to an accepted notice", run as a reader would run it.

Its ```sh blocks between ``<!-- walkthrough:start -->`` and ``<!-- walkthrough:end -->`` run in one
bash with ``set -euo pipefail``, in the repository's root, against the embedded mode (the process
`python3 dev.py run` starts) on a fresh data dir. The README names the default ports 8001-8004: the
test uses them when they are free. Otherwise it runs on other free ports and rewrites every
``127.0.0.1:800N`` in the blocks to them, which is the only change made to the text (and
``.venv/bin/`` when the tests run from another environment).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import httpx

from shared.auth import mint_token
from shared.settings import REPO_ROOT
from tests.embedded import PORTS, environment, run_embedded
from tests.infra import free_base_port, ports_free

README = REPO_ROOT / "README.md"
START = "<!-- walkthrough:start -->"
END = "<!-- walkthrough:end -->"
DEFAULT_BASE = 8001
# A fenced sh block, also when indented under a list item; its closing fence is indented alike.
_SH_BLOCK = re.compile(r"^([ \t]*)```sh[ \t]*\n(.*?)^\1```[ \t]*$", re.MULTILINE | re.DOTALL)
_DEFAULT_PORT = re.compile(r"127\.0\.0\.1:800([1-4])\b")
# Printed after the blocks: the ids the assertions need, from the walkthrough's own variables.
RESULT = "walkthrough-result"


def walkthrough_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    assert text.count(START) == 1, f"README needs exactly one {START} line"
    assert text.count(END) == 1, f"README needs exactly one {END} line"
    section = text[text.index(START) : text.index(END)]
    return [textwrap.dedent(block) for _indent, block in _SH_BLOCK.findall(section)]


def walkthrough_script(base: int) -> str:
    script = "\n".join(walkthrough_blocks())
    script = _DEFAULT_PORT.sub(lambda m: f"127.0.0.1:{base + int(m.group(1)) - 1}", script)
    own_bin = Path(sys.executable).parent
    readme_bin = REPO_ROOT / ".venv" / "bin"
    if not readme_bin.is_dir() or not os.path.samefile(own_bin, readme_bin):
        script = script.replace(".venv/bin/", f"{own_bin}/")
    trailer = f'printf "{RESULT} %s %s %s\\n" "$CASE" "$NOTICE" "$HALDEN"\n'
    return "set -euo pipefail\n" + script + "\n" + trailer


def test_the_walkthrough_has_its_blocks() -> None:
    blocks = walkthrough_blocks()
    assert len(blocks) >= 10, "the walkthrough's sh blocks were not found between the markers"
    assert all("```" not in block for block in blocks)


def test_the_readme_walkthrough_runs_to_an_accepted_notice(tmp_path: Path) -> None:
    for tool in ("bash", "curl", "python3"):
        assert shutil.which(tool), f"the README's walkthrough needs {tool} on PATH"
    base = DEFAULT_BASE if ports_free(DEFAULT_BASE, PORTS) else free_base_port(PORTS)
    script = walkthrough_script(base)
    with run_embedded(tmp_path / "data", base) as running:
        began = time.monotonic()
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=REPO_ROOT,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=90,
        )
        walked = time.monotonic() - began
        assert done.returncode == 0, f"the walkthrough failed:\n{done.stdout}\n{done.stderr}"
        result = next(line for line in done.stdout.splitlines() if line.startswith(RESULT + " "))
        case_id, notice_id, halden = result.split()[1:]

        # The demo receiver verified the signed notice and printed it (it prints before it answers,
        # and the walkthrough waited for the delivery, so only the pipe may lag).
        notice = None
        deadline = time.monotonic() + 5
        while notice is None and time.monotonic() < deadline:
            for index, line in enumerate(list(running.lines)):
                if (
                    line.startswith("[receiver] verified ")
                    and json.loads(line.split(": ", 1)[1]).get("case_id") == case_id
                ):
                    notice, arrived = json.loads(line.split(": ", 1)[1]), running.arrived[index]
                    break
            else:
                time.sleep(0.1)
        assert notice is not None, "no verified notice for the case: " + "".join(
            line for line in running.lines if line.startswith("[receiver]")
        )
        assert notice["notice_id"] == notice_id
        assert notice["recipient_organization_id"] == halden
        assert notice["type"] == "notice.release_upcoming.v1"
        assert "[receiver] REJECTED" not in "".join(running.lines)

        admin = {"Authorization": f"Bearer {mint_token(role='admin')}"}
        case_api, notify_worker = running.url(0), running.url(2)
        receipts = httpx.get(f"{notify_worker}/api/v1/notices/{notice_id}/receipts", headers=admin)
        assert receipts.status_code == 200, receipts.text
        (accepted,) = [r for r in receipts.json()["items"] if r["status"] == "accepted"]
        assert accepted["organization_id"] == halden

        group = httpx.get(f"{case_api}/api/v1/cases/{case_id}/group", headers=admin)
        assert group.status_code == 200, group.text
        assert any(
            member["person_name"] == accepted["contact"]["name"]
            and member["organization_id"] == halden
            and member["active"]
            for member in group.json()["members"]
        ), group.text

        # From the consent that released the notice to its delivery, by the services' own clocks.
        consents = httpx.get(f"{case_api}/api/v1/cases/{case_id}/consents", headers=admin).json()["items"]
        delivered = httpx.get(f"{notify_worker}/api/v1/notices/{notice_id}", headers=admin).json()
        consent_to_notice = (
            datetime.fromisoformat(delivered["delivered_at"])
            - datetime.fromisoformat(consents[0]["recorded_at"])
        ).total_seconds()
    print(
        f"\nREADME walkthrough on port {base}: services ready {running.elapsed:.2f} s after start, "
        f"the walkthrough took {walked:.2f} s; start to the first verified notice "
        f"{arrived - running.began:.2f} s; consent to delivered notice {consent_to_notice:.2f} s"
    )
