"""Alerts (station.yaml ``alerts:``, issue 11): a local command gets each event as JSON on stdin, a webhook on
127.0.0.1 gets it as a POST; failures are WARNING lines; a slow command never holds up the run."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labctl.config import ConfigError, parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.base import LabProcedure
from tests.engine_procedures import Ticks, make
from tests.helpers import default_station
from tests.loopback import LoopbackPeer, http_400

APPEND_STDIN = "import sys; open(sys.argv[1], 'ab').write(sys.stdin.buffer.read() + b'\\n')"


def _station(alerts: dict) -> Station:
    data = default_station()
    data["alerts"] = alerts
    return Station(parse_station(data))


def _suspend_once(engine: RunEngine, station: Station) -> None:
    """A suspension from the checkpoint at 2 s to the one after 4 s (station clock)."""
    t0 = station.clock.now()
    engine.add_suspender(lambda: "lamp dip" if 1.5 <= station.clock.now() - t0 < 4.0 else None)


class WallTicks(Ticks):
    """Ticks that also take wall time (0.2 s a point), as a real run does: an alert's warning lands in its file."""

    def wait(self, duration_s: float, step_s: float = 1.0) -> None:
        time.sleep(0.2)
        super().wait(duration_s, step_s)


class Fails(LabProcedure):
    NAME = "fails"

    def execute(self) -> None:
        raise RuntimeError("the cell shorted")


def test_a_local_command_gets_every_event_as_json_on_stdin(tmp_path):
    out = tmp_path / "alerts.jsonl"
    station = _station({"command": [sys.executable, "-c", APPEND_STDIN, str(out)]})
    engine = RunEngine(station, tmp_path, catalog=False, sample="cell-7")
    _suspend_once(engine, station)
    result = engine.run(make(Ticks, points=6, interval_s=1.0))
    assert result.status == "completed"
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["event"] for e in events] == ["suspended", "resumed", "completed"]
    assert all(e["run_id"] == result.run_id and e["procedure"] == "ticks" and e["sample"] == "cell-7"
               and e["station"] == "sim-bench" and e["path"] == str(result.path) for e in events)
    assert events[0]["reason"] == "lamp dip"
    station.close()


def test_a_failing_command_is_a_warning_and_the_run_goes_on(tmp_path, caplog):
    command = [sys.executable, "-c", "import sys; sys.stderr.write('no route to pager'); sys.exit(3)"]
    station = _station({"command": command})
    engine = RunEngine(station, tmp_path, catalog=False)
    _suspend_once(engine, station)
    with caplog.at_level(logging.WARNING, logger="labctl.alerts"), \
            caplog.at_level(logging.WARNING, logger="labctl.engine"):
        result = engine.run(make(WallTicks, points=8, interval_s=1.0))
    assert result.status == "completed"
    lines = load_run(result.path).events
    assert any(" WARNING: alert 'suspended' not delivered: command " in line and "exited with 3: no route to pager"
               in line for line in lines)
    # the run file is closed when the terminal alert goes out: its failure is in the log
    assert any("alert 'completed' not delivered" in r.getMessage() for r in caplog.records)
    station.close()


def test_a_slow_command_does_not_hold_up_the_run(tmp_path, caplog):
    station = _station({"command": [sys.executable, "-c", "import time; time.sleep(30)"], "timeout_s": 0.5})
    engine = RunEngine(station, tmp_path, catalog=False)
    _suspend_once(engine, station)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING):
        result = engine.run(make(WallTicks, points=10, interval_s=1.0))
    assert result.status == "completed"
    assert time.monotonic() - t0 < 8.0  # the alerts' thread is bounded by timeout_s (+1 s at the end)
    lines = load_run(result.path).events
    assert any("still running after 0.5 s (alerts.timeout_s): killed" in line for line in lines)
    # the run went on while the 'suspended' alert's command ran (0.5 s before it was killed): "resumed" came at once
    stamp = {line.split(" ", 1)[1]: datetime.fromisoformat(line.split(" ", 1)[0]) for line in lines}
    assert (stamp["resumed"] - stamp["suspended: lamp dip"]).total_seconds() < 0.3
    station.close()


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length", 0))
        type(self).bodies.append(self.rfile.read(length))
        type(self).content_types.append(self.headers.get("Content-Type"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook():
    class Handler(_Recorder):
        bodies: list[bytes] = []
        content_types: list[str | None] = []

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/labctl", Handler
    server.shutdown()
    server.server_close()


def test_a_webhook_on_127_0_0_1_gets_only_the_events_asked_for(tmp_path, webhook):
    url, handler = webhook
    station = _station({"webhook": url, "events": ["failed"]})
    engine = RunEngine(station, tmp_path, catalog=False)
    _suspend_once(engine, station)
    assert engine.run(make(Ticks, points=6, interval_s=1.0)).status == "completed"
    assert handler.bodies == []  # suspended, resumed, completed: not asked for
    result = RunEngine(station, tmp_path, catalog=False).run(Fails())
    assert result.status == "failed"
    (body,) = handler.bodies
    event = json.loads(body)
    assert event["event"] == "failed" and event["reason"] == "RuntimeError: the cell shorted"
    assert handler.content_types == ["application/json"]
    station.close()


def test_a_webhook_answering_an_http_error_is_a_warning(tmp_path):
    with LoopbackPeer(http_400) as peer:
        station = _station({"webhook": f"http://127.0.0.1:{peer.port}/hook", "events": ["suspended"]})
        engine = RunEngine(station, tmp_path, catalog=False)
        _suspend_once(engine, station)
        result = engine.run(make(WallTicks, points=8, interval_s=1.0))
    assert result.status == "completed"
    assert any(" WARNING: alert 'suspended' not delivered: webhook http://127.0.0.1:" in line and "400" in line
               for line in load_run(result.path).events)
    station.close()


def test_alert_settings_are_checked_before_any_run():
    with pytest.raises(ConfigError, match=r"alerts\.webhook = 'ftp://x': not an http:// or https:// URL"):
        parse_station({"instruments": {}, "alerts": {"webhook": "ftp://x"}})
    with pytest.raises(ConfigError, match=r"alerts\.events\.0"):
        parse_station({"instruments": {}, "alerts": {"command": ["true"], "events": ["exploded"]}})
    with pytest.raises(ConfigError, match=r"alerts\.command"):
        parse_station({"instruments": {}, "alerts": {"command": []}})
