"""Every bash block of the README runs as pasted, top to bottom, in a fresh copy of the
repository with its own virtualenv and home: the quickstart, then the server round trip.

Synopses are ``text`` blocks. Three bash blocks are not run here, each for a reason the
test states: the test command (this suite), the Docker quickstart (needs a Docker engine)
and the benchmarks (minutes of load, run by hand).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parent.parent
NOT_RUN_HERE = {
    "bash scripts/test": "the test command: it is what runs this test",
    "docker compose": "needs a Docker engine",
    "benchmarks/": "benchmarks load the machine for minutes; run by hand",
}


def bash_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S)


def not_run_reason(block: str) -> str | None:
    return next((why for key, why in NOT_RUN_HERE.items() if key in block), None)


def test_only_the_listed_blocks_are_left_out():
    left_out = [b for b in bash_blocks() if not_run_reason(b)]
    assert len(left_out) == len(NOT_RUN_HERE)


def fresh_copy(dest: Path) -> None:
    """The repository as a fresh clone would have it, with this working tree's changes."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
def test_the_readme_runs_as_pasted(tmp_path):
    if not os.environ.get("ANNOTA_TEST_ELASTICSEARCH_URL"):
        service_missing("the round trip needs Elasticsearch: run `bash scripts/test`")
    assert port_free(6900), "the README's server listens on 6900, which is taken"
    clone, home, venv = tmp_path / "clone", tmp_path / "home", tmp_path / "venv"
    clone.mkdir()
    home.mkdir()
    fresh_copy(clone)
    # a virtualenv of its own that sees this machine's packages: `pip install .` builds
    # annota from the copy without downloading its dependencies again
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    script = "set -eo pipefail\n" + "\n".join(
        b for b in bash_blocks() if not not_run_reason(b))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOTA_")
           or k.startswith("ANNOTA_TEST_") or k == "ANNOTA_SERVICES_DIR"}
    env.update(HOME=str(home), PATH=f"{venv / 'bin'}:{env['PATH']}", PIP_QUIET="1",
               VIRTUAL_ENV=str(venv))
    process = subprocess.Popen(["bash", "-c", script], cwd=clone, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever the blocks left running
    assert process.returncode == 0, output[-3000:]
    assert "up to date" in output  # the quickstart's revisions
    assert (home / ".annota" / "annota.db").is_file()
    # the quickstart searched the embedded engine: no service was configured for it
    assert (home / ".annota" / "annota.search.db").is_file()
    assert "2 of 2 records" in output
    assert '"indexed":3' in output.replace(" ", "")  # the import reached the index
    assert "Best banana smoothie in town." in output  # and the search found it
    assert "The banana bread" not in output.split('"indexed"')[-1]  # filtered by source
