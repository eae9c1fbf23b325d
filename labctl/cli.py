"""The ``labctl`` command line.

Exit codes: 0 run completed, 1 run aborted or failed, 2 bad input (station.yaml, parameter, unreachable
instrument, a data folder or output path that cannot be written) — in that last case nothing was sent to any
instrument, and one clear line says why (on stderr; with ``run --json`` also a JSON error object on stdout).

Streams: what a user may pipe (the figures table, the status, the file and plot paths, ``show``/``params``
tables, the JSON object) goes to stdout, never wrapped or truncated; the progress bar, warnings and errors go to
stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from labctl.config import ConfigError, StationConfig, load_station
from labctl.station import StationError

err_console = Console(stderr=True)
DEFAULT_STATION = "station.yaml"
#: console width used when stdout is not a terminal (a pipe, a file, CI): wide enough never to wrap or truncate
_PIPE_WIDTH = 1000


def _out_console(quiet: bool = False) -> Console:
    """The console for normal output (stdout): as wide as a terminal, or never wrapping in a pipe or file."""
    console = Console(quiet=quiet)
    if not console.is_terminal:
        console.width = _PIPE_WIDTH
    return console


class _InputError(click.ClickException):
    exit_code = 2

    def show(self, file: Any = None) -> None:
        err_console.print(f"[bold red]error:[/] {self.message}", highlight=False, markup=True, soft_wrap=True)


def _exists(path: Path) -> bool:
    """``path.exists()``, False also when the name itself is impossible (too long: ENAMETOOLONG)."""
    try:
        return path.exists()
    except OSError:
        return False


def _writable_folder(folder: Path, what: str) -> None:
    """Raise :class:`_InputError` (one line naming ``what``) unless run files can be written in ``folder``.

    ``folder`` may not exist yet (it is created when the first file is written): then its nearest existing
    ancestor must be a folder in which a file can really be created (a probe file, created and removed at
    once: permission bits alone say nothing for root, a read-only mount or /proc), and every missing name must
    fit the file system's name length.
    """
    if "\0" in str(folder):
        raise _InputError(f"{what} = {str(folder)!r}: not a usable path (it holds a NUL byte)")
    existing = folder
    try:
        while not _exists(existing):
            if existing.parent == existing:
                break
            existing = existing.parent
        if not existing.is_dir():
            kind = "" if existing == folder else f" ({existing} is a file)"
            raise _InputError(f"{what} = {str(folder)!r}: is not a folder{kind}; allowed: a folder, existing or "
                              "to be created")
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        long = [part for part in folder.relative_to(existing).parts if len(os.fsencode(part)) > name_max]
        if long:
            raise _InputError(f"{what} = {str(folder)!r}: the name {long[0][:40]!r}... is longer than the "
                              f"{name_max} bytes a file name may have here")
        with tempfile.TemporaryFile(dir=existing, prefix=".labctl-probe-"):
            pass
    except ValueError as exc:  # e.g. an embedded NUL byte
        raise _InputError(f"{what} = {str(folder)!r}: not a usable path ({exc})") from None
    except OSError as exc:
        where = "" if existing == folder else f" (in its nearest existing folder {existing})"
        raise _InputError(f"{what} = {str(folder)!r}: no file can be created there{where}: "
                          f"{exc.strerror or exc}") from None


def _station_path(path: str | None) -> Path:
    chosen = path or os.environ.get("LABCTL_STATION") or DEFAULT_STATION
    return Path(chosen)


def _load(path: str | None) -> tuple[Path, StationConfig]:
    p = _station_path(path)
    if not p.exists():
        raise _InputError(
            f"station file {p} not found (give --station PATH, set LABCTL_STATION, or run from the folder "
            "holding station.yaml)"
        )
    try:
        return p, load_station(p)
    except ConfigError as exc:
        raise _InputError(str(exc)) from None


@click.group()
@click.version_option(package_name="labctl")
def main() -> None:
    """labctl: solar-cell characterisation on real or simulated instruments."""


# -- run ------------------------------------------------------------------------------------------------------
@main.command("run")
@click.argument("procedure_name", metavar="PROCEDURE")
@click.option("--station", "station_path", help="station file (default ./station.yaml or $LABCTL_STATION)")
@click.option("--sample", default="sample", show_default=True, help="sample / device id")
@click.option("--operator", default=None, help="operator name (default: from the station file)")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE", help="set a procedure parameter")
@click.option("--out", "out_dir", default=None, help="data folder (default: station.data_dir)")
@click.option("--json", "as_json", is_flag=True, help="print exactly one JSON object on stdout")
@click.option("--no-plot", is_flag=True, help="do not write the PNG plot")
@click.option("--pixels", default=None, metavar="all|NAME,NAME",
              help="measure these pixels of the substrate layout, one run each (docs/substrates.md)")
@click.option("--layout", "layout_name", default=None, help="the layout of --pixels (default: station.layout, or "
              "the only one)")
def run_cmd(
    procedure_name: str,
    station_path: str | None,
    sample: str,
    operator: str | None,
    settings: tuple[str, ...],
    out_dir: str | None,
    as_json: bool,
    no_plot: bool,
    pixels: str | None,
    layout_name: str | None,
) -> None:
    """Run PROCEDURE (jv, eqe-calibration, eqe) on the station. Its parameters: `labctl params PROCEDURE`.

    With --json, stdout holds exactly one JSON object: {"file", "status", "results"} for a run, or
    {"file": null, "status": "error", "error": "<the one-line message>", "results": {}} (exit 2) when the run
    could not start.

    --pixels all|1,3,5 (jv, mpp, hold, voc-intensity): one run per pixel of the substrate layout (station.yaml
    layouts:), --sample naming the substrate; the switch connects each pixel, a contact check comes first (a pixel
    without contact is skipped). With --json: {"substrate_id", "file" (the substrate record), "status", "error",
    "pixels": {name: {"status", "file", "results", "reason", ...}}, "summary", "png"}. Exit 0 when every pixel
    was measured or skipped, 1 otherwise."""
    try:
        if pixels is not None or layout_name is not None:
            _run_substrate(procedure_name, station_path, sample, operator, settings, out_dir, as_json, no_plot,
                           pixels, layout_name)
            return
        _run(procedure_name, station_path, sample, operator, settings, out_dir, as_json, no_plot)
    except _InputError as exc:
        if as_json:
            click.echo(json.dumps({"file": None, "status": "error", "error": exc.message, "results": {}}))
        raise


def _procedure_class(name: str) -> type:
    """The procedure registered as ``name`` (entry point or in-process), else :class:`_InputError`: one line saying
    the name is unknown (and the known ones) or why its entry point could not be loaded."""
    from procedures import ProcedureNotFound, procedure_class

    try:
        return procedure_class(name)
    except ProcedureNotFound as exc:
        raise _InputError(str(exc)) from None


def _run(
    procedure_name: str,
    station_path: str | None,
    sample: str,
    operator: str | None,
    settings: tuple[str, ...],
    out_dir: str | None,
    as_json: bool,
    no_plot: bool,
) -> None:
    from labctl.engine import RunEngine
    from labctl.params import apply_settings
    from labctl.station import Station

    procedure_cls = _procedure_class(procedure_name)
    path, config = _load(station_path)
    procedure = procedure_cls()
    try:
        apply_settings(procedure, settings)
    except ConfigError as exc:
        raise _InputError(str(exc)) from None
    out = _data_folder(path, config, out_dir)
    _run_on_station(procedure, Station(config), f"[bold]{procedure_name}[/] {sample}", as_json, no_plot,
                    lambda station, subscribers: RunEngine(station, out, sample=sample, operator=operator,
                                                           subscribers=subscribers))


def _data_folder(path: Path, config: StationConfig, out_dir: str | None) -> Path:
    """--out, else the station's data folder; checked writable (one line otherwise)."""
    if out_dir:
        out = Path(out_dir)
        _writable_folder(out, "--out")
    else:
        out = path.parent / config.station.data_dir
        _writable_folder(out, f"{path}: station.data_dir")
    return out


def _run_substrate(procedure_name: str, station_path: str | None, sample: str, operator: str | None,
                   settings: tuple[str, ...], out_dir: str | None, as_json: bool, no_plot: bool, pixels: str | None,
                   layout_name: str | None) -> None:
    """``labctl run PROCEDURE --pixels ...``: every chosen pixel of the layout (labctl.substrate); exits."""
    from labctl.params import apply_settings
    from labctl.station import Station
    from labctl.substrate import SubstrateRunner, parse_pixels

    procedure_cls = _procedure_class(procedure_name)
    if not getattr(procedure_cls, "PER_PIXEL", False):
        from procedures import procedure_classes

        per_pixel = sorted(n for n, c in procedure_classes().items() if getattr(c, "PER_PIXEL", False))
        raise _InputError(f"--pixels: procedure {procedure_name} does not run per pixel (allowed with --pixels: "
                          f"{', '.join(per_pixel)})")
    if pixels is None:
        raise _InputError("--layout needs --pixels (all, or pixel names separated by commas)")
    if any(item.partition("=")[0].strip() == "area_cm2" for item in settings):
        raise _InputError("--set area_cm2: with --pixels each pixel's area is the layout's "
                          "(layouts.<name>.pixels[].area_cm2); leave it out")
    path, config = _load(station_path)
    try:
        name, layout = config.layout(layout_name)
        names = parse_pixels(pixels, name, layout)
        apply_settings(procedure_cls(), settings)  # a bad --set: one line now, not once per pixel
    except ConfigError as exc:
        raise _InputError(str(exc)) from None
    out = _data_folder(path, config, out_dir)

    def make_procedure(pixel: Any) -> Any:
        procedure = procedure_cls()
        apply_settings(procedure, settings)
        return procedure

    def settled(outcome: Any) -> None:
        where = outcome.file or outcome.reason or ""
        err_console.print(f"pixel {outcome.name}: {outcome.status}" + (f" ({where})" if where else ""),
                          highlight=False, soft_wrap=True)

    station = Station(config)
    if sys.stdin.isatty():
        station.operator = lambda message: click.prompt(message, default="", show_default=False, err=True)
    runner = SubstrateRunner(station, name, layout, names, make_procedure, out, sample=sample, operator=operator,
                             subscribers_for=lambda pixel: [_LiveWarnings(err_console, f"pixel {pixel}: ")],
                             on_pixel=settled, plot=not no_plot)
    try:
        runner.validate()
        result = runner.run()
    except (ConfigError, StationError) as exc:  # before any pixel was measured
        station.safe_state()
        station.close()
        raise _InputError(str(exc)) from None
    except KeyboardInterrupt:  # while connecting: nothing was measured
        station.safe_state()
        _print_safe_state(station)
        station.close()
        err_console.print("interrupted before the substrate started")
        if as_json:
            click.echo(json.dumps({"file": None, "status": "interrupted", "error": "interrupted before the "
                                   "substrate started", "results": {}, "pixels": {}}))
        sys.exit(130)
    _print_safe_state(station)
    station.close()
    if not no_plot:
        from labctl.plotting import plot_run
        from labctl.storage import load_run

        for outcome in result.pixels.values():
            if outcome.file:
                try:
                    plot_run(load_run(outcome.file, lazy=True))
                except Exception as exc:  # noqa: BLE001 - a plot failure must not hide the results
                    err_console.print(f"warning: plot of pixel {outcome.name} failed: {exc}", highlight=False)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        console = _out_console()
        _print_substrate(console, result)
    sys.exit(0 if result.status == "completed" else 1)


def _print_substrate(console: Console, result: Any) -> None:
    """The substrate for a person: the table (procedures.summary.print_substrate_summary), then the status and
    the paths."""
    from procedures.summary import print_substrate_summary

    print_substrate_summary(console, result.summary)
    console.print(f"status: [bold]{result.status}[/]" + (f" ({result.error})" if result.error else ""),
                  soft_wrap=True)
    console.print(f"record: {result.file}", highlight=False, soft_wrap=True)
    for name, outcome in result.pixels.items():
        if outcome.file:
            console.print(f"pixel {name}: {outcome.file}", highlight=False, soft_wrap=True)
    if result.png:
        console.print(f"plot:   {result.png}", highlight=False, soft_wrap=True)


def _run_on_station(procedure: Any, station: Any, title: str, as_json: bool, no_plot: bool,
                    make_engine: Any) -> None:
    """Run ``procedure`` on ``station`` with the engine ``make_engine(station, subscribers)`` (a new run, or
    ``labctl resume``'s), with the progress bar and live warnings; print or echo the outcome; exit."""
    code, payload = _execute_on_station(procedure, station, title, as_json, no_plot, make_engine)
    if as_json:
        click.echo(json.dumps(payload))
    sys.exit(code)


def _execute_on_station(procedure: Any, station: Any, title: str, as_json: bool, no_plot: bool,
                        make_engine: Any) -> tuple[int, dict[str, Any]]:
    """:func:`_run_on_station` without the JSON echo and the exit: (exit code, the JSON object
    ``{"file", "status", "results"}``); the human summary is printed unless ``as_json``."""
    from labctl.storage import RunFileError

    if sys.stdin.isatty():
        station.operator = lambda message: click.prompt(message, default="", show_default=False, err=True)
    console = Console(stderr=True, quiet=as_json)  # progress and live warnings
    out_console = _out_console(quiet=as_json)  # what a user may pipe: the table, the status, the paths
    with Progress(
        TextColumn(title),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f} %"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # a bar redrawn into a pipe or a CI log is noise
    ) as progress:
        task = progress.add_task("run", total=100)
        engine = make_engine(
            station, [_ProgressBar(progress, task), _LiveWarnings(err_console if as_json else progress.console)])
        try:
            result = engine.run(procedure)
            _print_safe_state(station)
        except (ConfigError, StationError, RunFileError) as exc:  # RunFileError: a resumed file that went busy
            station.close()
            raise _InputError(str(exc)) from None
        except KeyboardInterrupt:  # before the run file existed (e.g. while connecting): nothing was measured
            station.safe_state()
            _print_safe_state(station)
            station.close()
            err_console.print("interrupted before the run started")
            if as_json:
                click.echo(json.dumps({"file": None, "status": "interrupted",
                                       "error": "interrupted before the run started", "results": {}}))
            sys.exit(130)
    station.close()
    png = None
    if not no_plot:
        from labctl.plotting import plot_run
        from labctl.storage import load_run

        try:
            png = plot_run(load_run(result.path, lazy=True))  # streams read as the plot asks for them
        except Exception as exc:  # noqa: BLE001 - a plot failure must not hide the run's result
            err_console.print(f"warning: plot failed: {exc}", highlight=False, soft_wrap=True)
    results = _with_segments(procedure, result)
    payload = {"file": str(result.path), "status": result.status, "results": results}
    if not as_json:
        type(procedure).summarise(out_console, result.results)
        out_console.print(f"status: [bold]{result.status}[/]" + (f" ({result.error})" if result.error else ""),
                          soft_wrap=True)
        out_console.print(f"file:   {result.path}", highlight=False, soft_wrap=True)
        if png:
            out_console.print(f"plot:   {png}", highlight=False, soft_wrap=True)
    return (0 if result.status == "completed" else 1), payload


def _with_segments(procedure: Any, result: Any) -> dict[str, Any]:
    """The results of a run, plus ``segments`` and ``gaps`` (each with start, end and reason) from its file for a
    procedure that can be resumed (``labctl resume``)."""
    if not hasattr(procedure, "resume_from"):
        return result.results
    from labctl.storage import read_segments

    try:
        _, segments, gaps = read_segments(result.path)
    except (OSError, KeyError) as exc:
        err_console.print(f"warning: cannot read the segments of {result.path}: {exc}", highlight=False)
        return result.results
    return {**result.results, "segments": segments, "gaps": gaps}


class _ProgressBar:
    """Document subscriber: moves the progress bar with the run's ``progress`` documents."""

    def __init__(self, progress: Progress, task: Any) -> None:
        self.progress, self.task = progress, task

    def __call__(self, name: str, doc: Any) -> None:
        if name == "progress":
            self.progress.update(self.task, completed=100.0 * doc.fraction)


class _LiveWarnings:
    """Document subscriber: echoes the run's warnings and failures (``log`` documents) as they happen, each line
    after ``prefix`` (e.g. "pixel 3: " for one pixel of a substrate)."""

    def __init__(self, console: Console, prefix: str = "") -> None:
        self.console, self.prefix = console, prefix

    def __call__(self, name: str, doc: Any) -> None:
        if name == "log":
            _echo_warning(self.console, doc.message, self.prefix)


def _print_safe_state(station: Any) -> None:
    """One line per instrument on stderr: its safe state confirmed (what was done, what was read back), or why
    it could not be made safe; then one line for the whole station."""
    report = station.safe_report
    for outcome in report:
        if outcome.ok:
            click.echo(f"safe: {outcome.role}: {outcome.detail} ({outcome.elapsed_s:.1f} s)", err=True)
        else:
            click.echo(f"NOT SAFE: {outcome.role}: {outcome.detail}", err=True)
    failed = [o.role for o in report if not o.ok]
    if failed:
        click.echo(f"NOT SAFE: {', '.join(failed)}: check these instruments by hand", err=True)
    elif report:
        click.echo(f"all instruments safe ({len(report)})", err=True)


def _echo_warning(console: Console, message: str, prefix: str = "") -> None:
    """Show the operator the run's warnings and failures as they happen (everything else is in the file)."""
    if any(word in message for word in ("WARNING", "FAILED", "failed")):
        console.print(f"[yellow]{escape(prefix + message.splitlines()[0])}[/]", highlight=False, soft_wrap=True)


def _summarise(console: Console, procedure_name: str, results: dict[str, Any]) -> None:
    """The results for a person, as the procedure prints them (its ``summarise``; the default one for a procedure
    that is not registered here)."""
    from procedures import procedure_classes
    from procedures.base import LabProcedure

    procedure_classes().get(procedure_name, LabProcedure).summarise(console, results)


@main.command("resume")
@click.argument("file", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--interrupted", is_flag=True, help="resume every interrupted run of the station, newest first "
              "(needs station.auto_resume: true)")
@click.option("--station", "station_path", help="station file (default ./station.yaml or $LABCTL_STATION)")
@click.option("--reason", default="", help="why the run goes on (default: 'resumed after <its status>')")
@click.option("--json", "as_json", is_flag=True, help="print exactly one JSON object on stdout")
@click.option("--no-plot", is_flag=True, help="do not write the PNG plot")
def resume_cmd(file: str | None, interrupted: bool, station_path: str | None, reason: str, as_json: bool,
               no_plot: bool) -> None:
    """Continue the interrupted (or aborted) run FILE into a new segment of the same file (a hold goes on after
    its last reading). Its parameters are the ones stored in the file; the instruments are the station's.

    With --json, stdout holds one JSON object {"file", "status", "results"}; the results hold "rows",
    "segments" and "gaps" (each with start, end and reason). A run that cannot be resumed: exit 2, one line.

    --interrupted (no FILE): the station's interrupted runs that can be resumed, newest first, one after the
    other (for a lab PC that restarts: docs/stability.md); only when the station file sets station.auto_resume:
    true. None to resume: says so, exit 0. With --json: {"station", "runs": [{"file", "status", "results"}]}."""
    if interrupted == (file is not None):
        raise _InputError("labctl resume: give either a run FILE or --interrupted (not both)")
    if interrupted:
        _resume_interrupted(station_path, reason, as_json, no_plot)
        return
    assert file is not None
    try:
        _resume(file, station_path, reason, as_json, no_plot)
    except _InputError as exc:
        if as_json:
            click.echo(json.dumps({"file": file, "status": "error", "error": exc.message, "results": {}}))
        raise


def _pixel_run(file: str | Path) -> str | None:
    """Why ``file`` cannot be resumed when it is one pixel of a substrate (None: it is not): resuming it would
    neither select its switch channel nor use its source meter."""
    from labctl.storage import load_run

    try:
        info = load_run(file, lazy=True).info
    except (OSError, KeyError):
        return None  # prepare_resume reports an unreadable file
    if info.get("substrate_id") is None:
        return None
    return (f"run file {file} is pixel {info.get('pixel')!r} of substrate {info['substrate_id']}: labctl resume "
            "does not select a pixel's switch channel nor its source meter (not yet); measure it again with "
            f"labctl run {info.get('procedure', 'PROCEDURE')} --pixels {info.get('pixel')}")


def _resume(file: str, station_path: str | None, reason: str, as_json: bool, no_plot: bool) -> None:
    from labctl.resume import ResumeEngine, prepare_resume
    from labctl.station import Station

    _, config = _load(station_path)
    pixel = _pixel_run(file)
    if pixel is not None:
        raise _InputError(pixel)
    try:
        plan = prepare_resume(file, reason)
    except ConfigError as exc:
        raise _InputError(str(exc)) from None
    except (OSError, KeyError) as exc:
        raise _InputError(f"cannot read run file {file}: {exc}") from None
    if not os.access(file, os.W_OK):
        raise _InputError(f"run file {file}: cannot be written (permission denied): it cannot be resumed")
    _run_on_station(plan.procedure, Station(config), plan.title, as_json, no_plot,
                    lambda station, subscribers: ResumeEngine(station, plan.run_file, sample=plan.sample,
                                                              operator=plan.operator, subscribers=subscribers))


@main.command("params")
@click.argument("procedure_name", metavar="PROCEDURE")
def params_cmd(procedure_name: str) -> None:
    """List PROCEDURE's parameters with defaults, units and allowed values."""
    from labctl.params import describe_allowed

    table = Table(title=f"{procedure_name} parameters (set with --set NAME=VALUE)")
    parameters = _procedure_class(procedure_name)()._parameters
    # a name is what the user types after --set: never cut, also in a narrow terminal (the other columns wrap)
    table.add_column("name", no_wrap=True, min_width=max(len(n) for n in parameters))
    for col in ("default", "allowed", "description"):
        table.add_column(col)
    for name, param in parameters.items():
        table.add_row(name, str(param.default), describe_allowed(param), param.name)
    _out_console().print(table)


# -- files ----------------------------------------------------------------------------------------------------
def _open_run(file: str, lazy: bool = False) -> Any:
    """The run file read back (``lazy``: its streams read only as far as they are asked for, for show and plot of
    a long run); one line naming the file when it cannot be read."""
    from labctl.storage import load_run

    try:
        return load_run(file, lazy=lazy)
    except (OSError, KeyError) as exc:
        raise _InputError(f"cannot read run file {file}: {exc}") from None


def _bench_and_clock(station: dict[str, Any]) -> tuple[str, str]:
    """From a run file's station snapshot: was the bench simulated, and on which clock did the run go?

    The simulator (``labctl.simulators`` entry point) recognises the runs it simulated and says on which clock
    (its ``describe_snapshot``); anything else ran on real instruments, on the real clock."""
    from labctl.simulators import simulator_class

    simulator = simulator_class()
    described = simulator.describe_snapshot(station) if simulator is not None and station else None
    if described is not None:
        return described
    if not station:
        return "unknown (no station in the file)", "unknown"
    return "real instruments", "real"


@main.command("show")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def show_cmd(file: str) -> None:
    """Summary of a run file."""
    run = _open_run(file, lazy=True)
    console = _out_console()
    keys = ("run_id", "procedure", "sample", "substrate_id", "pixel", "operator", "status", "start_time", "end_time",
            "software_version")
    for key in keys:
        if key in ("substrate_id", "pixel") and key not in run.info:
            continue  # a run of one cell
        value = run.info.get(key, "—")
        if key == "status" and value == "interrupted":
            value = (f"interrupted (the run never ended: its writer stopped; last heartbeat "
                     f"{run.info.get('heartbeat', '—')})")
        console.print(f"{key:>17}: {value}", highlight=False, soft_wrap=True)
    bench, clock = _bench_and_clock(run.station)
    console.print(f"{'bench':>17}: {bench}", highlight=False, soft_wrap=True)
    console.print(f"{'clock':>17}: {clock}", highlight=False, soft_wrap=True)
    from labctl.storage import stream_rows

    for name in run.streams:  # counted, not read: a 600 h run has millions of rows
        console.print(f"{'stream ' + name:>17}: {stream_rows(run.streams, name)} rows, columns "
                      f"{', '.join(run.columns.get(name, {}))}")
    if len(run.segments) > 1:  # a resumed run: where it stopped, for how long, and why it went on
        for seg in run.segments:
            console.print(f"{'segment ' + str(seg['index']):>17}: {seg['start']} to {seg['end'] or '(running)'}, "
                          f"{seg['status']} ({seg['reason']})", highlight=False, soft_wrap=True)
        for k, gap in enumerate(run.gaps, start=1):
            length = f"{gap['duration_s']:.1f} s" if gap["duration_s"] is not None else "unknown length"
            console.print(f"{'gap ' + str(k):>17}: {length}, {gap['start']} to {gap['end']} ({gap['reason']})",
                          highlight=False, soft_wrap=True)
    for role, idn in run.idn.items():
        console.print(f"{'idn ' + role:>17}: {idn}", soft_wrap=True)
    _summarise(console, run.info.get("procedure", ""), run.results)
    for warning in run.results.get("warnings", []):
        console.print(f"[yellow]WARNING: {warning}[/]", highlight=False, soft_wrap=True)
    params = ", ".join(f"{k}={v}{(' ' + run.units[k]) if run.units.get(k, '1') != '1' else ''}"
                       for k, v in run.parameters.items())
    console.print(f"parameters: {params}", highlight=False)
    from labctl import isos

    if isos.is_stability_run(run.parameters):
        for line in isos.checklist_lines(run.parameters, run.station, run.info.get("procedure", "")):
            console.print(line, highlight=False, soft_wrap=True, markup=False)
    if run.events:
        console.print(f"last event: {run.events[-1]}", highlight=False)


def _plot_target(run: Any, out: str | None) -> Path:
    """Where ``labctl plot`` writes: ``--out`` (a file, or an existing folder), else beside the run file.

    Raises :class:`_InputError` (one line) for a missing folder, a folder that cannot be written or a file type
    matplotlib cannot write."""
    from labctl.plotting import supported_formats

    target = Path(out) if out else run.path.with_suffix(".png")
    what = "--out" if out else "plot beside the run file"
    try:
        if target.is_dir():
            target = target / run.path.with_suffix(".png").name
        folder = target.parent
        if not folder.is_dir():
            problem = "is a file" if folder.exists() else "does not exist (create it first)"
            raise _InputError(f"{what} = {str(target)!r}: the folder {str(folder)!r} {problem}")
    except ValueError as exc:
        raise _InputError(f"{what} = {str(target)!r}: not a usable path ({exc})") from None
    kind = target.suffix.lstrip(".").lower()
    if kind not in supported_formats():
        raise _InputError(f"{what} = {str(target)!r}: cannot write a '{kind}' file; allowed suffixes: "
                          f"{', '.join('.' + k for k in supported_formats())}")
    _writable_folder(folder, f"{what} folder")
    return target


@main.command("plot")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", default=None, help="PNG path, or an existing folder (default: beside the file)")
def plot_cmd(file: str, out: str | None) -> None:
    """Write a PNG plot of a run file; prints its path on stdout."""
    from labctl.plotting import plot_run

    run = _open_run(file, lazy=True)
    target = _plot_target(run, out)
    try:
        click.echo(str(plot_run(run, target)))
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror or exc}") from None


@main.command("export")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--csv", "as_csv", is_flag=True, required=True, help="write one CSV per data stream")
@click.option("--out", default=None, help="folder for the CSV files (default: beside the run file)")
def export_cmd(file: str, as_csv: bool, out: str | None) -> None:
    """Export a run file's data streams to CSV (with a commented metadata header); prints their paths."""
    from labctl.export import export_csv

    run = _open_run(file)
    folder = Path(out) if out else run.path.parent
    _writable_folder(folder, "--out" if out else "export beside the run file")
    try:
        paths = export_csv(run, folder)
    except OSError as exc:
        raise click.ClickException(f"cannot write the CSV files in {folder}: {exc.strerror or exc}") from None
    for path in paths:
        click.echo(str(path))


# -- analysis -------------------------------------------------------------------------------------------------
@main.command("report")
@click.argument("refs", nargs=-1, required=True, metavar="RUN...")
@click.option("--out", "out_dir", default=None, metavar="DIR",
              help="folder for report.pdf and its page PNGs (default: ./report-<UTC time>)")
@click.option("--station", "station_path", help="station file whose catalog resolves run ids (default ./station.yaml "
                                                "or $LABCTL_STATION)")
@click.option("--data", "data_dir", default=None, metavar="DIR",
              help="data folder whose catalog resolves run ids (default: station.data_dir)")
@click.option("--title", default=None, help="the report's title (default: the inputs)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object: pdf, pngs, pages, missing, checklist")
def report_cmd(refs: tuple[str, ...], out_dir: str | None, station_path: str | None, data_dir: str | None,
               title: str | None, as_json: bool) -> None:
    """A PDF report (and one PNG per page) of runs: each RUN a run file, a .substrate.json record, or a run id or
    substrate id from the catalog. Per run its plot and summary table; per substrate its box plots, map and pixel
    table; several runs of one sample compared; the reporting checklist (journal items, ISOS) with what is
    missing. Prints the PDF's path, then the PNGs'."""
    from datetime import datetime, timezone

    from labctl import report

    url = station = None
    if not all(Path(ref).is_file() for ref in refs):  # a run id: the catalog is needed
        url = _catalog_url(station_path, data_dir)
        if station_path is not None or data_dir is None:  # --data alone: that folder's catalog, any station
            path, config = _load(station_path)
            station = config.station.name
            data_dir = data_dir or str(path.parent / config.station.data_dir)
    try:
        sources = report.resolve(refs, catalog_url=url, station=station, data_dir=data_dir)
    except ConfigError as exc:
        raise _InputError(str(exc)) from None
    folder = Path(out_dir) if out_dir else Path.cwd() / datetime.now(timezone.utc).strftime("report-%Y%m%dT%H%M%SZ")
    _writable_folder(folder, "--out")
    try:
        written = report.write_report(sources, folder, title=title)
    except OSError as exc:
        raise click.ClickException(f"cannot write the report in {folder}: {exc.strerror or exc}") from None
    if as_json:
        click.echo(json.dumps(written.to_json()))
        return
    for path in (written.pdf, *written.pngs):
        click.echo(str(path))
    if written.missing:
        err_console.print(f"[yellow]reporting checklist: {len(written.missing)} item(s) missing (listed on the last "
                          f"page of the report and in {folder / 'report.json'})[/]", highlight=False, soft_wrap=True)


@main.group("analyze")
def analyze_group() -> None:
    """Analyses of run files and tables."""


@analyze_group.command("mismatch")
@click.option("--eqe", "eqe_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="EQE run file of the device under test")
@click.option("--reference-sr", default="csi-reference-typical", show_default=True,
              help="reference cell's spectral response over its whole range: a CSV (wavelength_nm, A/W; zeros "
              "allowed) or csi-reference-typical")
@click.option("--simulator-spectrum", default="am15g", show_default=True,
              help="solar simulator spectrum at the test plane: a CSV (wavelength_nm, irradiance) or am15g")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def analyze_mismatch(eqe_file: str, reference_sr: str, simulator_spectrum: str, as_json: bool) -> None:
    """Spectral mismatch factor M (IEC 60904-7) for a J–V under this simulator; use it as --set mismatch=M.

    Each response is integrated over its own range; the EQE run must reach the band edge and the simulator
    spectrum must cover both responses (else exit 2, naming the ranges)."""
    from labctl.calibration import CalibrationError
    from labctl.mismatch import mismatch_for_run

    try:
        m, details = mismatch_for_run(_open_run(eqe_file), reference_sr, simulator_spectrum)
    except (CalibrationError, ValueError) as exc:
        raise _InputError(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"mismatch": m, **details}))
    else:
        r_lo, r_hi = details["reference_sr_range_nm"]
        click.echo(f"M = {m:.6f}  (each response over its own range: reference SR {r_lo:g}-{r_hi:g} nm, device "
                   f"EQE {details['wavelength_min_nm']:g}-{details['wavelength_max_nm']:g} nm, zero beyond its "
                   "band edge)")
        click.echo(f"use: labctl run jv --set mismatch={m:.6f}")


@analyze_group.command("voc-loss")
@click.option("--jv", "jv_ref", required=True, metavar="FILE|RUN_ID", help="J–V run (light): Voc and Jsc")
@click.option("--eqe", "eqe_ref", required=True, metavar="FILE|RUN_ID", help="EQE run reaching below the gap")
@click.option("--plqy", "plqy_ref", default=None, metavar="FILE|RUN_ID", help="PLQY run: its results' plqy")
@click.option("--plqy-value", type=float, default=None, metavar="FRACTION",
              help="the device's absolute PLQY at open circuit and 1 sun, instead of --plqy")
@click.option("--temperature", "temperature_K", type=float, default=None, metavar="K",
              help="device temperature of the detailed balance [default: 298.15]")
@click.option("--jv-scan", type=click.Choice(("qss", "reverse", "forward")), default=None,
              help="J–V scan whose Voc/Jsc to use (default: qss, else reverse, else forward)")
@click.option("--station", "station_path", help="station file (default ./station.yaml or $LABCTL_STATION)")
@click.option("--out", "data_dir", default=None, help="data folder: run ids and the analysis run (default: "
              "station.data_dir)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def analyze_voc_loss(jv_ref: str, eqe_ref: str, plqy_ref: str | None, plqy_value: float | None,
                     temperature_K: float | None, jv_scan: str | None, station_path: str | None,
                     data_dir: str | None, as_json: bool) -> None:
    """Detailed-balance Voc losses (radiative, bulk non-radiative, surface) from J–V, EQE and PLQY runs; stored
    as a 'voc-loss' run in the data folder (methods ref. §6)."""
    from labctl import voc_loss
    from labctl.catalog import catalog_url

    if (plqy_ref is None) == (plqy_value is None):
        raise _InputError("give exactly one of --plqy FILE|RUN_ID and --plqy-value FRACTION")
    path, config = _load(station_path)
    folder = Path(data_dir) if data_dir else path.parent / config.station.data_dir
    url = catalog_url(config.station.catalog, folder)
    name = config.station.name
    temperature = voc_loss.DEFAULT_TEMPERATURE_K if temperature_K is None else temperature_K
    try:
        jv = _open_run(str(voc_loss.resolve_run_file(jv_ref, "--jv", url, name, folder)))
        eqe = _open_run(str(voc_loss.resolve_run_file(eqe_ref, "--eqe", url, name, folder)))
        plqy_run = None if plqy_ref is None else _open_run(
            str(voc_loss.resolve_run_file(plqy_ref, "--plqy", url, name, folder)))
        scan, voc, jsc = voc_loss.jv_figures(jv.results, jv_scan)
        plqy = voc_loss.plqy_from_run(plqy_run) if plqy_run is not None else float(plqy_value)  # type: ignore[arg-type]
        results = voc_loss.analyse(*voc_loss.eqe_curve(eqe), voc, jsc, plqy, temperature)
    except ConfigError as exc:
        raise _InputError(str(exc)) from None
    results["voc_scan"] = scan
    inputs = {"jv_run": jv.info.get("run_id", ""), "eqe_run": eqe.info.get("run_id", ""),
              "plqy_run": "" if plqy_run is None else plqy_run.info.get("run_id", "")}
    parameters: dict[str, tuple[Any, str]] = {k: (v, "") for k, v in inputs.items()}
    parameters.update(jv_scan=(scan, ""), plqy_value=(plqy, "1"), temperature_K=(temperature, "K"))
    _writable_folder(folder, "--out")
    with _catalog_errors():
        run_id, run_path = voc_loss.store_run(folder, results, parameters, sample=jv.info.get("sample", "sample"),
                                              operator=config.station.operator, station=config.snapshot(),
                                              catalog_url=url)
    for text in results["warnings"]:
        _echo_warning(err_console, text)
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "file": str(run_path), **inputs, "results": results}))
    else:
        console = _out_console()
        voc_loss.print_table(console, results)
        console.print(f"Voc from the {scan} scan of {inputs['jv_run']}; stored: {run_path}", highlight=False)


# -- the run catalog ------------------------------------------------------------------------------------------
_STATUSES = ("running", "completed", "aborted", "failed", "interrupted")
#: the key results shown in the table of `labctl runs` (all of them are in --json)
def _resume_interrupted(station_path: str | None, reason: str, as_json: bool, no_plot: bool) -> None:
    from labctl.resume import ResumeEngine, interrupted_runs, prepare_resume
    from labctl.station import Station

    path, config = _load(station_path)
    name = config.station.name
    if not config.station.auto_resume:
        raise _InputError(f"{path}: station.auto_resume is false: `labctl resume --interrupted` resumes nothing "
                          "(set station.auto_resume: true, or resume one run with `labctl resume FILE`)")
    data_dir = path.parent / config.station.data_dir
    with _catalog_errors():
        files = interrupted_runs(config, data_dir)
    if not files:
        message = f"no interrupted runs of station {name!r} to resume (data folder {data_dir})"
        if as_json:
            click.echo(json.dumps({"station": name, "runs": [], "message": message}))
        else:
            click.echo(message)
        sys.exit(0)
    outcomes, worst = [], 0
    for file in files:
        err_console.print(f"resuming {file}", highlight=False, soft_wrap=True)
        try:
            pixel = _pixel_run(file)
            if pixel is not None:
                raise ConfigError(pixel)
            plan = prepare_resume(file, reason or "resumed at start-up (labctl resume --interrupted)")
        except (ConfigError, OSError, KeyError) as exc:  # changed since it was listed: the next one goes on
            err_console.print(f"[yellow]skipped {file}: {exc}[/]", highlight=False, soft_wrap=True)
            outcomes.append({"file": str(file), "status": "error", "error": str(exc), "results": {}})
            worst = max(worst, 1)
            continue
        code, payload = _execute_on_station(
            plan.procedure, Station(config), plan.title, as_json, no_plot,
            lambda station, subscribers, plan=plan: ResumeEngine(station, plan.run_file, sample=plan.sample,
                                                                 operator=plan.operator, subscribers=subscribers))
        outcomes.append(payload)
        worst = max(worst, code)
    if as_json:
        click.echo(json.dumps({"station": name, "runs": outcomes}))
    sys.exit(worst)


_RUN_FIGURES = (("pce_pct", "PCE {:.3g} %"), ("voc_V", "Voc {:.4g} V"), ("jsc_mA_cm2", "Jsc {:.4g} mA/cm²"),
                ("ff", "FF {:.3g}"), ("jsc_integrated_mA_cm2", "Jsc(EQE) {:.4g} mA/cm²"))


def _catalog_url(station_path: str | None, data_dir: str | None) -> str:
    """The catalog of ``labctl runs``: station.catalog, else ``<data folder>/catalog.sqlite`` (the data folder:
    ``data_dir`` if given, else the station's ``station.data_dir``). Without a station file, ``data_dir`` must be
    given (else the one-line error of a missing station file)."""
    from labctl.catalog import catalog_url

    path = _station_path(station_path)
    if data_dir is not None and station_path is None and not path.exists():
        return catalog_url(None, data_dir)
    path, config = _load(station_path)
    return catalog_url(config.station.catalog, data_dir or path.parent / config.station.data_dir)


def _open_catalog(url: str) -> Any:
    with _catalog_errors():
        from labctl.catalog import Catalog

        return Catalog(url)


@contextlib.contextmanager
def _catalog_errors() -> Iterator[None]:
    """A catalog that cannot be opened or read: one line, exit 2."""
    from labctl.catalog import CatalogError

    try:
        yield
    except CatalogError as exc:
        raise _InputError(str(exc)) from None


@main.group("runs", invoke_without_command=True)
@click.option("--station", "station_path", help="station file (default ./station.yaml or $LABCTL_STATION)")
@click.option("--out", "data_dir", default=None, help="data folder whose catalog to read (default: station.data_dir)")
@click.option("--sample", default=None, help="only this sample / device id")
@click.option("--procedure", default=None, help="only this procedure (jv, eqe, ...)")
@click.option("--since", default=None, metavar="DATE", help="only runs started since: YYYY-MM-DD[THH:MM], UTC")
@click.option("--status", type=click.Choice(_STATUSES), default=None, help="only runs with this status")
@click.option("--substrate", default=None, metavar="ID", help="only the pixel runs of this substrate id")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object: {\"catalog\", \"runs\": [...]}")
@click.pass_context
def runs_group(ctx: click.Context, station_path: str | None, data_dir: str | None, sample: str | None,
               procedure: str | None, since: str | None, status: str | None, substrate: str | None,
               as_json: bool) -> None:
    """List the runs in the catalog (oldest first), or rebuild it: `labctl runs reindex DIR`.

    The catalog is station.catalog from the station file, else <data folder>/catalog.sqlite. A run the catalog
    still calls running is checked against its file: a file whose writer died shows as interrupted."""
    if ctx.invoked_subcommand is not None:
        return
    from labctl.catalog import catalog_exists, parse_since

    try:
        since_utc = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise _InputError(str(exc)) from None
    url = _catalog_url(station_path, data_dir)
    if not catalog_exists(url):  # nothing recorded yet: say so, and create nothing
        runs: list[Any] = []
    else:
        with _open_catalog(url) as catalog, _catalog_errors():
            runs = catalog.runs(sample=sample, procedure=procedure, since=since_utc, status=status,
                                substrate=substrate)
    if as_json:
        click.echo(json.dumps({"catalog": _shown_url(url), "runs": [run.to_json() for run in runs]}))
        return
    if not runs:
        click.echo(f"no runs in the catalog {_shown_url(url)} (`labctl runs reindex DIR` builds it from run files)")
        return
    table = Table(title=f"runs in {_shown_url(url)}")
    for column in ("start (UTC)", "station", "run id", "procedure", "sample", "status", "results", "file"):
        table.add_column(column, no_wrap=column in ("run id", "file"))
    for run in runs:
        start = run.start_time.strftime("%Y-%m-%d %H:%M:%S") if run.start_time else "—"
        figures = ", ".join(fmt.format(run.results[key]) for key, fmt in _RUN_FIGURES
                            if isinstance(run.results.get(key), (int, float)))
        sample_ = run.sample if run.pixel is None else f"{run.sample} pixel {run.pixel}"
        table.add_row(start, run.station, run.run_id, run.procedure, sample_, run.status, figures or "—",
                      run.path)
    _out_console().print(table)


def _shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@runs_group.command("reindex")
@click.argument("folder", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.option("--station", "station_path", help="station file whose station.catalog to fill (default: "
              "./station.yaml if there is one; without station.catalog: DIR/catalog.sqlite)")
def runs_reindex(folder: str, station_path: str | None) -> None:
    """Rebuild the catalog from the run files under DIR (the files are the source of truth): every run file is
    recorded as it reads now, and rows of files that are gone from DIR are removed."""
    from labctl.catalog import catalog_url

    station_catalog = None
    if station_path is not None or _station_path(None).exists():
        station_catalog = _load(station_path)[1].station.catalog
    url = catalog_url(station_catalog, folder)
    with _open_catalog(url) as catalog, _catalog_errors():
        report = catalog.reindex(folder)
    for path, why in report.unreadable.items():
        err_console.print(f"[yellow]skipped {path}: not a readable run file ({why})[/]", highlight=False,
                          soft_wrap=True)
    click.echo(f"indexed {report.indexed} run file(s) from {folder} into {_shown_url(url)}; removed "
               f"{report.removed} row(s) whose file is gone; skipped {len(report.unreadable)} unreadable file(s)")


# -- status ---------------------------------------------------------------------------------------------------
@main.command("status")
@click.option("--station", "station_path", help="station file (default ./station.yaml or $LABCTL_STATION)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object: {\"station\", \"runs\": [...]}")
def status_cmd(station_path: str | None, as_json: bool) -> None:
    """What is running on this station: each run the catalog calls running (a dead writer shows interrupted),
    with its progress, ETA, suspensions and last values, from its status file (<run file>.status.json)."""
    from labctl.catalog import catalog_exists
    from labctl.status import station_runs

    path, config = _load(station_path)
    url = _catalog_url(station_path, None)
    runs: list[dict[str, Any]] = []
    if catalog_exists(url):
        with _open_catalog(url) as catalog, _catalog_errors():
            runs = station_runs(catalog, config.station.name)
    if as_json:
        click.echo(json.dumps({"station": config.station.name, "runs": runs}, default=str))
        return
    if not runs:
        click.echo(f"nothing running on station {config.station.name!r} (catalog {_shown_url(url)})")
        return
    console = _out_console()
    for run in runs:
        console.print(_status_lines(run), highlight=False, soft_wrap=True)


def _status_lines(run: dict[str, Any]) -> str:
    """A run of ``labctl status`` for a person: id, what, status, progress and ETA, suspensions, last values."""
    lines = [f"{run.get('run_id')}  {run.get('procedure')}  sample {run.get('sample')}  [bold]{run.get('status')}[/]"]
    progress = run.get("progress")
    if isinstance(progress, (int, float)):
        eta = f", ETA {run['eta']}" if run.get("eta") and run.get("status") == "running" else ""
        lines.append(f"  progress {100 * progress:.1f} %{eta}")
    sus = run.get("suspensions") or {}
    if sus.get("count"):
        now = f"; now: {sus['current']}" if sus.get("current") else ""
        lines.append(f"  suspended {sus['count']} time(s), {float(sus.get('total_s') or 0) / 3600:.3g} h in all{now}")
    recovery = run.get("recovery") or {}
    if recovery.get("faults"):
        faults = ", ".join(f"{kind} {n}" for kind, n in sorted(recovery["faults"].items()))
        lines.append(f"  I/O faults: {faults}; recovered {recovery.get('recovered', 0)}")
    for stream, row in (run.get("last") or {}).items():
        values = ", ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(row.items())[:8])
        lines.append(f"  last {stream}: {values}")
    extra = run.get("extra") or {}
    if extra:
        lines.append("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in list(extra.items())[:8]))
    if run.get("status") == "interrupted":
        lines.append(f"  resume with: labctl resume {run.get('path')}")
    lines.append(f"  file {run.get('path')}")
    return "\n".join(lines)


# -- serve ----------------------------------------------------------------------------------------------------
@main.command("serve")
@click.option("--station", "station_path", help="station file (default ./station.yaml or $LABCTL_STATION)")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind; beyond loopback a token is generated, printed once and required")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="TCP port")
def serve_cmd(station_path: str | None, host: str, port: int) -> None:
    """A read-only web page of this station: what runs, its live plot, last values, ETA, suspensions and events,
    and the catalog's recent runs with their figures (docs/serve.md). Nothing on it can change an instrument or a
    run. Needs the serve extra: pip install -e '.[serve]'."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise _InputError(f"labctl serve needs the serve extra ({exc.name} is missing): "
                          "pip install -e '.[serve]'") from None
    from labctl.web import serve

    _, config = _load(station_path)
    url = _catalog_url(station_path, None)
    serve(url, config.station.name, host=host, port=port, echo=click.echo)


# -- station --------------------------------------------------------------------------------------------------
# -- gui ------------------------------------------------------------------------------------------------------
@main.command("gui")
@click.option("--station", "station_path", help="station file (default ./station.yaml or $LABCTL_STATION)")
@click.option("--out", "out_dir", default=None, help="data folder (default: station.data_dir)")
def gui_cmd(station_path: str | None, out_dir: str | None) -> None:
    """Open the bench window on the station (docs/gui.md): procedures and their parameters, a queue of runs, live
    plots, abort, the station's instruments, the run catalog. Needs the gui extra: pip install -e '.[gui]'."""
    path, config = _load(station_path)
    out = _data_folder(path, config, out_dir)
    try:
        from labctl.gui import run_window
    except ImportError as exc:
        raise _InputError(f"labctl gui needs the gui extra (pip install -e '.[gui]'): {exc}") from None
    sys.exit(run_window(config, out, station_path=path))


@main.group("station")
def station_group() -> None:
    """Inspect the station."""


@station_group.command("check")
@click.option("--station", "station_path", help="station file (default ./station.yaml)")
def station_check(station_path: str | None) -> None:
    """Connect to each instrument; print its driver, what it offers, *IDN? and any queued errors."""
    from labctl.station import Station

    _, config = _load(station_path)
    station = Station(config)
    console = Console(highlight=False)
    console.print(f"station {config.station.name}" + (" (simulated bench)" if station.simulated else ""))
    bad = False
    for role, cfg in config.instruments.items():
        try:
            station.connect([role])
            inst = station[role]
            idn = str(inst.id).strip()
            try:  # the check_errors contract: [(code, message), ...], never raises for a queued error
                errors = inst.check_errors()
                err_text = "; ".join(f"{code},{text}" for code, text in errors) if errors else "none"
            except NotImplementedError:  # a plug-in driver without it (PyMeasure's default for non-SCPI)
                err_text = "n/a (no error queue)"
        except Exception as exc:  # noqa: BLE001 - report every instrument, not only the first failure
            idn, err_text, bad = "—", f"UNREACHABLE: {exc}", True
        console.print(f"{role}: {cfg.driver} at {cfg.resource}")
        console.print(f"    offers: {', '.join(cfg.registration.capabilities) or 'nothing declared'}", soft_wrap=True)
        console.print(f"    *IDN?:  {idn}", soft_wrap=True)
        console.print(f"    errors: {err_text}", soft_wrap=True)
    station.close()
    sys.exit(2 if bad else 0)


# -- simulator ------------------------------------------------------------------------------------------------
@main.group("sim")
def sim_group() -> None:
    """The simulated bench."""


@sim_group.command("serve")
@click.option("--station", "station_path", help="station file whose simulation section to serve")
@click.option("--latency-ms", default=0.0, show_default=True, help="extra delay per query (GPIB-like round trip)")
@click.option("--write-station", default=None, help="also write a station file that points at the served ports")
@click.option("--duration-s", default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
def sim_serve(station_path: str | None, latency_ms: float, write_station: str | None, duration_s: float) -> None:
    """Serve every instrument of the station's simulated bench on 127.0.0.1 (real time)."""
    from labctl.simulators import simulator_class

    _, config = _load(station_path)
    simulator = simulator_class()
    if simulator is None:
        raise _InputError("no simulator is installed (labctl.simulators entry point 'sim')")
    simulator.serve(config, latency_s=latency_ms / 1000.0, write_station=write_station, duration_s=duration_s)


if __name__ == "__main__":
    main()
