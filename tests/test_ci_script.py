"""CI (.ci/run, issue 7 item 10): lints with ruff beside the tests, and removes its temporary run folder."""

from __future__ import annotations

import re
import subprocess

from tests.helpers import REPO

SCRIPT = (REPO / ".ci" / "run").read_text()


def _commands() -> list[str]:
    return [line.strip() for line in SCRIPT.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_ruff_check_before_the_tests():
    commands = _commands()
    assert "ruff check ." in commands
    assert commands.index("ruff check .") < next(i for i, c in enumerate(commands) if c.startswith("pytest"))


def test_ci_temp_folder_is_removed_when_the_script_ends(tmp_path):
    """Run the script's own temp-folder lines (mktemp + its trap) in bash, then a failing command, as in CI."""
    lines = [c for c in _commands() if re.match(r"(out=\$\(mktemp|trap )", c)]
    assert len(lines) == 2, lines
    snippet = "set -euo pipefail\n" + "\n".join(lines) + '\necho "$out"\ntouch "$out/run.h5"\nfalse\n'
    done = subprocess.run(["bash", "-c", snippet], env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode != 0  # the failing step still fails CI
    made = done.stdout.strip()
    assert made.startswith(str(tmp_path)) and not list(tmp_path.iterdir()), list(tmp_path.iterdir())
