"""``labctl gui``: the bench window (docs/gui.md).

A Qt window (qtpy on PySide6, pyqtgraph) over the same engine, documents and run files as the CLI: runs go through
:class:`labctl.engine.RunEngine` in its background thread (:meth:`~labctl.engine.RunEngine.start`), so the safe
state and crash safety hold as they do for ``labctl run``; live plots draw from a bounded, decimated
:class:`labctl.live.LiveBuffer`, never from the run file. Needs the ``gui`` extra (``pip install -e '.[gui]'``);
nothing here is imported by the rest of labctl.

:func:`run_window` opens the window and runs the Qt event loop; :class:`labctl.gui.window.BenchWindow` is the window.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_window(config: Any, out_dir: str | Path, *, station_path: str | Path | None = None) -> int:
    """Open the bench window on the station ``config`` (a :class:`labctl.config.StationConfig`), runs written to
    ``out_dir``; run the Qt event loop until the window closes. Returns the event loop's exit code."""
    from qtpy import QtWidgets

    from labctl.gui.window import BenchWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["labctl gui"])
    window = BenchWindow(config, out_dir, station_path=station_path)
    handler = interrupt_handler(window)
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    window.show()
    print(f"labctl gui: the window is open on station {config.station.name}; closing it or Ctrl-C here ends any "
          "run safely", file=sys.stderr, flush=True)
    try:
        return int(app.exec())
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def interrupt_handler(window: Any) -> Callable[[int, Any], None]:
    """The window's SIGINT/SIGTERM handler (Ctrl-C in the terminal that started ``labctl gui``, a ``kill``): close
    the window without asking; a running run is aborted and its safe state waited for first, as when a person
    closes the window and says yes. (The window's timer runs every 200 ms, so Python sees the signal within it.)"""

    def handler(signum: int, frame: Any) -> None:
        window.confirm_abort_on_close = lambda: True
        window.append_log(f"{signal.Signals(signum).name} received: aborting any run safely, then closing")
        window.close()

    return handler
