"""CI (.ci/run, issue 7 item 10; issue 8 §6): lints with ruff and checks the import-linter walls beside the tests,
runs README's test command, and removes its temporary run folder."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import REPO

SCRIPT = (REPO / ".ci" / "run").read_text()


def _commands() -> list[str]:
    return [line.strip() for line in SCRIPT.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_ruff_check_before_the_tests():
    commands = _commands()
    assert "ruff check ." in commands
    assert commands.index("ruff check .") < next(i for i, c in enumerate(commands) if c.startswith("pytest"))


def test_ci_checks_the_walls_between_the_packages_before_the_tests():
    commands = _commands()
    assert "lint-imports" in commands
    assert commands.index("lint-imports") < next(i for i, c in enumerate(commands) if c.startswith("pytest"))


def test_readme_test_command_is_what_ci_runs():
    """README's second quick-start command, step by step, is .ci/run's last steps (pytest options aside)."""
    readme = (REPO / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("pip install -e '.[test]'"))
    readme_steps = [step.strip() for step in line.split("#")[0].split("&&")]
    assert readme_steps == ["pip install -e '.[test]'", "ruff check .", "lint-imports", "pytest"]
    commands = _commands()
    ci_steps = commands[commands.index("pip install --quiet -e '.[test]'"):]
    assert [c.replace(" --quiet", "").split(" -q")[0] for c in ci_steps] == readme_steps


def test_the_walls_are_import_linter_contracts_in_pyproject():
    """Issue 8 §6: the five walls, each a forbidden contract over the four root packages."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    linter = data["tool"]["importlinter"]
    assert set(linter["root_packages"]) == {"labctl", "drivers", "procedures", "sim_instruments"}
    walls = {tuple(c["source_modules"]): set(c["forbidden_modules"]) for c in linter["contracts"]}
    assert all(c["type"] == "forbidden" and not c.get("allow_indirect_imports") for c in linter["contracts"])
    assert walls == {
        ("drivers",): {"labctl.*", "procedures", "sim_instruments"},
        ("labctl.analysis",): {"labctl.*", "drivers", "procedures", "sim_instruments"},
        ("procedures",): {"sim_instruments"},
        ("sim_instruments",): {"drivers", "procedures"},
        ("labctl",): {"sim_instruments"},
    }
    # the only ignored imports are the drivers' one allowed dependency, labctl.analysis: no wall has an exception
    ignored = {c["source_modules"][0]: set(c.get("ignore_imports", [])) for c in linter["contracts"]}
    assert ignored.pop("drivers") == {"drivers.** -> labctl.analysis", "drivers.** -> labctl.analysis.**"}
    assert not any(ignored.values()), ignored
    assert "import-linter" in " ".join(data["project"]["optional-dependencies"]["test"])


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
