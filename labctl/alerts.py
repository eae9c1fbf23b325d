"""Alerts (station.yaml ``alerts:``): tell someone when a run fails, is suspended, resumes or ends.

Each event is one JSON object, ``{"event": "failed" | "suspended" | "resumed" | "completed" | "aborted",
"run_id", "procedure", "sample", "station", "path", "time" (UTC ISO 8601), "reason"}``, given to

* ``command`` (an argv list, run without a shell) on its standard input, and/or
* ``webhook`` (an http(s) URL) as the body of a POST (``Content-Type: application/json``).

An alert never holds up the run: alerts are queued and sent in order by one background thread, each bounded by
``timeout_s`` (the command is killed, the request abandoned). A failure (a command that exits non-zero or cannot
start, an HTTP error, a timeout) is reported through ``warn`` as a line containing WARNING.
:meth:`AlertSender.drain` waits (bounded) for the alerts still queued, so the last one of a run is not lost when
the process exits.
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from labctl.config import AlertsConfig

log = logging.getLogger(__name__)


class AlertSender:
    """Sends the events ``config.events`` asks for (module docstring).

    Parameters
    ----------
    config
        station.yaml's ``alerts:`` (:class:`labctl.config.AlertsConfig`).
    warn
        Called with a one-line WARNING when an alert could not be delivered (default: the Python log).
    """

    def __init__(self, config: AlertsConfig, warn: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.warn = warn or (lambda message: log.warning("%s", message))
        self._queue: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: (event, ok) of every alert sent, in the order they were sent
        self.sent: list[tuple[str, bool]] = []

    def wants(self, event: str) -> bool:
        return event in self.config.events

    def send(self, event: str, **fields: Any) -> None:
        """Queue ``event`` with ``fields`` (JSON-able) for the background thread; returns at once."""
        if not self.wants(event):
            return
        payload = {"event": event, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
        self._queue.put((event, json.dumps(payload, default=str).encode()))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="labctl-alerts", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            try:
                event, body = self._queue.get(timeout=1.0)
            except queue.Empty:
                return
            try:
                self._deliver(event, body)
            finally:
                self._queue.task_done()

    def _deliver(self, event: str, body: bytes) -> None:
        problems = []
        if self.config.command:
            problems += self._run_command(body)
        if self.config.webhook:
            problems += self._post(body)
        for problem in problems:
            try:
                self.warn(f"WARNING: alert '{event}' not delivered: {problem}")
            except Exception:  # noqa: BLE001 - the run may be over; the Python log still has it
                log.warning("alert %r not delivered: %s", event, problem)
        self.sent.append((event, not problems))

    def _run_command(self, body: bytes) -> list[str]:
        argv = list(self.config.command or [])
        try:
            done = subprocess.run(argv, input=body, capture_output=True, timeout=self.config.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return [f"command {argv[0]!r} still running after {self.config.timeout_s:g} s (alerts.timeout_s): killed"]
        except OSError as exc:
            return [f"command {argv[0]!r} could not run: {exc}"]
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip().splitlines()
            return [f"command {argv[0]!r} exited with {done.returncode}" + (f": {err[-1]}" if err else "")]
        return []

    def _post(self, body: bytes) -> list[str]:
        url = str(self.config.webhook)
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:  # noqa: S310 - http(s) only
                status = response.status
        except Exception as exc:  # noqa: BLE001 - any failure of the request is one warning line
            return [f"webhook {url}: {type(exc).__name__}: {exc}"]
        return [] if 200 <= status < 300 else [f"webhook {url}: HTTP {status}"]

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait up to ``timeout_s`` (default: the alert timeout + 1 s) for the queued alerts to be sent; True if
        none is left."""
        end = time.monotonic() + (self.config.timeout_s + 1.0 if timeout_s is None else timeout_s)
        while self._queue.unfinished_tasks:
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)
        return True
