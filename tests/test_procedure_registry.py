"""Procedures are plug-ins (issue 8 §1): found through the ``labctl.procedures`` entry points, or registered
in-process; a broken entry point is one clear line and does not break the other procedures."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest
from click.testing import CliRunner
from pymeasure.experiment import FloatParameter

import procedures
from labctl.cli import main
from labctl.storage import Column, load_run
from procedures.base import LabProcedure, StreamSpec
from tests.helpers import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib


def _invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _declared() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data["project"]["entry-points"][procedures.GROUP]


@pytest.fixture
def fresh_registry():
    """Load the entry points again for this test, and again (unpatched) after it."""
    procedures.reload()
    yield
    procedures.reload()


def test_pyproject_declares_the_entry_points_that_are_installed_and_load(fresh_registry):
    declared = _declared()
    installed = {ep.name: ep.value for ep in procedures._entry_points()}
    assert installed == declared  # the environment was installed from this pyproject (pip install -e .)
    assert procedures.load_errors() == {}
    classes = procedures.procedure_classes()
    assert set(classes) == set(declared)
    for name, value in declared.items():
        module, _, attr = value.partition(":")
        cls = classes[name]
        assert (cls.__module__, cls.__name__) == (module, attr)
        assert cls.NAME == name  # the run file's procedure name is the name `labctl run` takes


def test_the_built_in_procedures_are_in_the_registry_without_a_hand_written_list(fresh_registry):
    from procedures.eqe import EQECalibrationProcedure, EQEProcedure
    from procedures.jv import JVProcedure

    assert procedures.REGISTRY["jv"] is JVProcedure
    assert procedures.REGISTRY["eqe"] is EQEProcedure
    assert procedures.REGISTRY["eqe-calibration"] is EQECalibrationProcedure


def _with_broken(monkeypatch, name: str, value: str) -> None:
    real = procedures._entry_points()
    broken = EntryPoint(name=name, value=value, group=procedures.GROUP)
    monkeypatch.setattr(procedures, "_entry_points", lambda: [*real, broken])
    procedures.reload()


def test_a_missing_procedure_module_is_one_line_and_the_others_still_work(monkeypatch, fresh_registry, tmp_path):
    _with_broken(monkeypatch, "broken", "procedures.not_there:Nope")
    for args in (["run", "broken", "--station", str(REPO / "station.yaml"), "--out", str(tmp_path)],
                 ["params", "broken"]):
        res = _invoke(args)
        assert res.exit_code == 2, res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        assert "procedure 'broken' cannot be loaded" in lines[0]
        assert "procedures.not_there:Nope" in lines[0] and "No module named 'procedures.not_there'" in lines[0]
    assert "broken" not in procedures.REGISTRY and "jv" in procedures.REGISTRY
    assert _invoke(["params", "jv"]).exit_code == 0
    res = _invoke(["run", "jv", "--station", str(REPO / "station.yaml"), "--out", str(tmp_path), "--no-plot",
                   "--set", "direction=reverse"])
    assert res.exit_code == 0, res.output
    assert "status: completed" in res.stdout
    res = _invoke(["run", "nope", "--station", str(REPO / "station.yaml")])
    assert res.exit_code == 2
    line = " ".join(res.stderr.split())
    assert "unknown procedure 'nope'; known: " in line and "(cannot be loaded: " in line
    known = line.split("known: ")[1].split(" (")[0].split(", ")
    unloadable = line.split("(cannot be loaded: ")[1].rstrip(")").split(", ")
    assert {"jv", "eqe", "eqe-calibration"} <= set(known) and "broken" not in known and "broken" in unloadable


def test_an_entry_point_that_is_not_a_procedure_is_refused_in_one_line(monkeypatch, fresh_registry):
    _with_broken(monkeypatch, "notaproc", "labctl.config:ConfigError")
    res = _invoke(["params", "notaproc"])
    assert res.exit_code == 2
    assert "procedure 'notaproc' cannot be loaded" in res.stderr and "not a LabProcedure subclass" in res.stderr


class TinyProcedure(LabProcedure):
    """A procedure that exists only in this test: reads the SMU's current once at a set voltage."""

    NAME = "tiny"
    REQUIRES = ("smu",)
    STREAMS = {"tiny": StreamSpec([Column("voltage_V", "V"), Column("current_A", "A")], signal="current_A",
                                  axes="voltage_V")}
    bias_V = FloatParameter("Bias voltage", units="V", default=0.0, minimum=-1.0, maximum=1.0)

    def execute(self) -> None:
        self.record("tiny", {"voltage_V": self.bias_V, "current_A": 1.5e-3})

    def analyse(self, streams):
        return {"current_A": float(streams["tiny"]["current_A"].iloc[0]), "label": "one point"}


@pytest.fixture
def tiny():
    procedures.register_procedure(TinyProcedure)
    yield TinyProcedure
    procedures.unregister_procedure("tiny")


def test_a_procedure_registered_in_process_is_run_listed_and_shown(tiny, tmp_path):
    assert procedures.REGISTRY["tiny"] is TinyProcedure
    res = _invoke(["params", "tiny"])
    assert res.exit_code == 0 and "bias_V" in res.stdout
    res = _invoke(["run", "tiny", "--station", str(REPO / "station.yaml"), "--out", str(tmp_path),
                   "--set", "bias_V=0.5", "--no-plot"])
    assert res.exit_code == 0, res.output
    assert "current_A: 0.0015" in res.stdout and "label: one point" in res.stdout  # the default summary
    (path,) = tmp_path.rglob("*.h5")
    assert load_run(path).info["procedure"] == "tiny"
    shown = _invoke(["show", str(path)])
    assert shown.exit_code == 0 and "current_A: 0.0015" in shown.stdout


def test_register_procedure_refuses_what_is_not_a_procedure():
    with pytest.raises(TypeError, match="not a LabProcedure subclass"):
        procedures.register_procedure(dict)


class TinySummarised(TinyProcedure):
    """The same, with its own summary and plot: the CLI prints and draws what the procedure says."""

    NAME = "tiny-summarised"

    @classmethod
    def summarise(cls, console, results):
        console.print(f"tiny current {1e3 * results['current_A']:.2f} mA", highlight=False)

    @classmethod
    def plot(cls, ax, run):
        ax.plot([0.0, 1.0], [2.0, 3.0], label="tiny line")
        return "tiny drawn"


def test_the_summary_and_the_plot_belong_to_the_procedure(tiny, tmp_path):
    import matplotlib.pyplot as plt

    from labctl.plotting import figure

    procedures.register_procedure(TinySummarised)
    try:
        res = _invoke(["run", "tiny-summarised", "--station", str(REPO / "station.yaml"), "--out", str(tmp_path)])
        assert res.exit_code == 0, res.output
        assert "tiny current 1.50 mA" in res.stdout and "current_A:" not in res.stdout
        (path,) = tmp_path.rglob("*.h5")
        assert path.with_suffix(".png").exists()
        assert "tiny current 1.50 mA" in _invoke(["show", str(path)]).stdout
        fig = figure(load_run(path))
        try:
            ax = fig.axes[0]
            assert ax.get_title().startswith("tiny drawn — sample — completed")
            assert [line.get_label() for line in ax.get_lines()] == ["tiny line"]
        finally:
            plt.close(fig)
    finally:
        procedures.unregister_procedure("tiny-summarised")


def test_the_default_plot_draws_the_first_streams_signal_against_its_axis(tiny, tmp_path):
    import matplotlib.pyplot as plt

    from labctl.plotting import figure

    res = _invoke(["run", "tiny", "--station", str(REPO / "station.yaml"), "--out", str(tmp_path),
                   "--set", "bias_V=0.25"])
    assert res.exit_code == 0, res.output
    (path,) = tmp_path.rglob("*.h5")
    fig = figure(load_run(path))
    try:
        ax = fig.axes[0]
        (line,) = ax.get_lines()
        assert list(line.get_xdata()) == [0.25] and list(line.get_ydata()) == [1.5e-3]
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("voltage_V", "current_A")
        assert ax.get_title() == "tiny — sample — completed"
    finally:
        plt.close(fig)


def test_one_name_one_procedure(tiny):
    """A run file's procedure name must mean one thing: no silent override of an entry point or a registration."""
    class OtherJV(TinyProcedure):
        NAME = "jv"

    class OtherTiny(TinyProcedure):
        pass

    with pytest.raises(ValueError, match="'jv' is already provided by the labctl.procedures entry point"):
        procedures.register_procedure(OtherJV)
    with pytest.raises(ValueError, match="'tiny' is already registered in-process"):
        procedures.register_procedure(OtherTiny)
    procedures.register_procedure(TinyProcedure)  # the same class again is harmless
    assert procedures.REGISTRY["jv"].__module__ == "procedures.jv"
