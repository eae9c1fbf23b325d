"""Spine v2 against the code before it, side by side on this machine, now.

Runs the J–V benchmarks of the first spine issue (``bench_jv_tcp.py``: the 141-point sweep over TCP;
``bench_jv_virtual.py``: the J–V on the virtual clock) in the tree *before* spine v2 and in this one, alternately,
and prints each figure beside the other (best of the rounds: the machine is shared). It adds the engine's own
figures: rows per second through the engine onto the run file, and the growth of the process's resident memory
over a 200,000-row run (a tiny procedure on the virtual clock; before spine v2 the engine kept every row).

The before tree is taken from git (``git archive``, default: commit 0d26850, where spine v2 branched off) into
a temporary folder; nothing in the repository changes. Run: ``python benchmarks/bench_spine_v2.py [--rounds 2]
[--before REV] [--skip-tcp]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEFORE_REV = "0d26850"

#: a procedure using only what both engines offer (check_abort, record, progress), run inside each tree
ENGINE_SNIPPET = r'''
import json, sys, tempfile, time
from pymeasure.experiment import IntegerParameter
from labctl.config import load_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import Column
from procedures.base import LabProcedure, StreamSpec

class Rows(LabProcedure):
    NAME = "rows"
    points = IntegerParameter("Points", default=1)
    STREAMS = {"rows": StreamSpec([Column("time_s", "s"), Column("index", "", "i8"), Column("value_V", "V")],
                                  "value_V", "time_s")}
    def execute(self):
        clock = self.station.clock
        for k in range(self.points):
            self.check_abort()
            self.record("rows", {"time_s": clock.now(), "index": k, "value_V": 0.001 * k})
            self.progress((k + 1) / self.points)
    def analyse(self, streams):
        return {"rows": int(len(streams["rows"]))}

def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

n = int(sys.argv[1])
station = Station(load_station(sys.argv[2]))
with tempfile.TemporaryDirectory() as tmp:
    RunEngine(station, tmp).run(Rows())  # warm-up: imports, first file
    proc = Rows(); proc.points = n
    rss0 = rss_bytes(); t0 = time.perf_counter()
    result = RunEngine(station, tmp).run(proc)
    wall = time.perf_counter() - t0; rss1 = rss_bytes()
    assert result.status == "completed" and result.results["rows"] == n, (result.status, result.error)
print(json.dumps({"rows_per_s": n / wall, "rss_growth_MB": (rss1 - rss0) / 1e6}))
'''


def before_tree(rev: str, into: Path) -> Path:
    """The repository at ``rev`` extracted into ``into`` (git archive: the repository itself is not touched)."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_in(tree: Path, args: list[str]) -> str:
    """Run ``python args...`` with ``tree``'s code first on the path (its labctl, drivers, procedures, ...)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{args[0]} in {tree} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def parse(text: str) -> dict[str, float]:
    """The figures of bench_jv_tcp.py / bench_jv_virtual.py output, by name."""
    figures: dict[str, float] = {}
    for m in re.finditer(r"nplc=(\S+)\s+delay=(\S+)\s+s: wall ([\d.]+) s, instrument needs ([\d.]+) s "
                         r"\(([+-][\d.]+) %\), configure (\d+) ms", text):
        key = f"TCP sweep nplc={m[1]} delay={m[2]} s"
        figures[f"{key}: wall above instrument time (%)"] = float(m[5])
        figures[f"{key}: configure (ms)"] = float(m[6])
    for m in re.finditer(r"nplc=(\S+), zero delay: stock point-by-point loop ([\d.]+) s vs built-in sweep "
                         r"([\d.]+) s → ([\d.]+)x", text):
        figures[f"TCP nplc={m[1]}: built-in sweep vs stock loop (x faster)"] = float(m[4])
    m = re.search(r"\(3\) .* wall time ([\d.]+) s best, ([\d.]+) s median", text)
    if m:
        figures["virtual 141-point J-V: wall (s, best)"] = float(m[1])
        figures["virtual 141-point J-V: wall (s, median)"] = float(m[2])
    for m in re.finditer(r"\(2\) requested (\S+) V/s → .*\(([+-][\d.]+) %", text):
        figures[f"virtual scan rate {m[1]} V/s: achieved - requested (%)"] = float(m[2])
    return figures


LOWER_IS_BETTER = ("wall", "configure", "above", "rss", "achieved")


def best(values: list[float], name: str) -> float:
    if "achieved" in name:  # a deviation: the one closest to zero
        return min(values, key=abs)
    return min(values) if any(word in name.lower() for word in LOWER_IS_BETTER) else max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default=BEFORE_REV, help="git revision before spine v2")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--skip-tcp", action="store_true")
    args = parser.parse_args()
    scripts = ["benchmarks/bench_jv_virtual.py"] + ([] if args.skip_tcp else ["benchmarks/bench_jv_tcp.py"])
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": before_tree(args.before, Path(tmp) / "before"), "spine v2": REPO}
        runs: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
        for round_ in range(args.rounds):
            for name, tree in (trees.items() if round_ % 2 == 0 else reversed(trees.items())):
                figures: dict[str, float] = {}
                for script in scripts:
                    figures.update(parse(run_in(tree, [script])))
                engine = json.loads(run_in(tree, ["-c", ENGINE_SNIPPET, str(args.rows), str(tree / "station.yaml")]))
                figures[f"engine: rows/s, {args.rows:,} rows, virtual clock"] = engine["rows_per_s"]
                figures[f"engine: RSS growth over {args.rows:,} rows (MB)"] = engine["rss_growth_MB"]
                for key, value in figures.items():
                    runs[name].setdefault(key, []).append(value)
                print(f"round {round_ + 1}/{args.rounds}: {name} done", file=sys.stderr)
    names = list(runs["before"])
    width = max(len(n) for n in names)
    print(f"{'figure (best of ' + str(args.rounds) + ' rounds)':<{width}}  {'before':>10}  {'spine v2':>10}")
    for key in names:
        before = best(runs["before"][key], key)
        after = best(runs["spine v2"].get(key, [float("nan")]), key)
        print(f"{key:<{width}}  {before:>10.4g}  {after:>10.4g}")


if __name__ == "__main__":
    main()
