"""``labctl serve``'s event stream on the wire (uvicorn on 127.0.0.1, httpx): the events a page gets while a run
goes, each ``points`` event only with rows not sent before; and a shared catalog's other benches in the list."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from labctl.catalog import Catalog, default_url
from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.web import create_app
from tests.engine_procedures import Ticks, make
from tests.helpers import default_station, make_procedure
from tests.postgres import postgres_server, postgres_url  # noqa: F401, F811 - fixtures
from tests.test_web_browser import served

pytestmark = pytest.mark.tcp
STATION = "sim-bench"


def _events(response, until, timeout_s=30.0):
    """(event, data) pairs read from an SSE response until ``until(events)`` is true."""
    events, name, deadline = [], None, time.monotonic() + timeout_s
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
            if until(events):
                return events
        assert time.monotonic() < deadline, f"timed out; got {[e for e, _ in events]}"
    raise AssertionError("the stream ended")


def test_the_event_stream_sends_each_row_once_while_a_run_goes(tmp_path):
    data = default_station()
    data["simulation"]["clock"] = "real"
    station = Station(parse_station(data))
    engine = RunEngine(station, tmp_path, sample="cell-1", flush_interval_s=0.2)
    started = threading.Event()
    engine.subscribe(lambda name, doc: started.set() if name == "event" else None)
    engine.start(make(Ticks, points=40, interval_s=0.1))
    assert started.wait(30)
    app = create_app(default_url(tmp_path), STATION, host="127.0.0.1", interval_s=0.2, catalog_interval_s=0.5)
    try:
        with served(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            with client.stream("GET", "/events") as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                events = _events(response, lambda ev: sum(len(d.get(k, [])) for e, d in ev if e == "points"
                                                          for k in d) >= 40)
            assert client.post("/events").status_code == 405
        result = engine.join(30)
    finally:
        engine.abort()
        engine.join(30)
        station.close()
    assert result.status == "completed"
    kinds = [e for e, _ in events]
    assert kinds[:2] == ["live", "recent"] and kinds.count("points") >= 2  # the plot came in several deltas
    (live,) = events[0][1]["live"]
    assert live["procedure"] == "ticks" and live["plot"]["y"] == "value_V"
    rows = [p[0] for e, d in events if e == "points" for p in d[live["key"]]]
    assert rows == list(range(40))  # every row once, in order: no point sent twice
    values = [p[2] for e, d in events if e == "points" for p in d[live["key"]]]
    assert values == pytest.approx([0.001 * k for k in range(40)])


def test_a_shared_catalog_lists_every_benchs_runs_and_only_this_ones_as_live(tmp_path):
    with Catalog(default_url(tmp_path)) as catalog:
        for station, run_id, status in (("bench-2", "b2-run", "running"), (STATION, "mine", "completed"),
                                        ("bench-3", "b3-run", "completed")):
            catalog.record(station=station, run_id=run_id, procedure="mpp", sample="S", status=status,
                           start_time="2026-12-01T10:00:00+00:00", path=f"/elsewhere/{run_id}.h5",
                           results={"pce_pct": 17.5})
    app = create_app(default_url(tmp_path), STATION, host="127.0.0.1", linger_s=0.0)
    with served(app) as url:
        state = httpx.get(url + "/api/state", timeout=30).json()
        figure = httpx.get(url + "/figure", params={"station": "bench-2", "run_id": "b2-run"}, timeout=30)
    assert sorted((r["station"], r["run_id"]) for r in state["recent"]) == [
        ("bench-2", "b2-run"), ("bench-3", "b3-run"), (STATION, "mine")]
    assert all(r["figures"] == {"pce_pct": 17.5} for r in state["recent"])
    assert not any(r["has_file"] for r in state["recent"])  # no figure button for files on other PCs
    assert state["live"] == []  # bench-2's running run is bench-2's page's to show live
    assert figure.status_code == 404 and "not on this machine" in figure.text


def test_with_a_shared_postgresql_catalog_one_page_lists_both_benches_runs(tmp_path, postgres_url):  # noqa: F811
    results = {}
    for name in ("bench-a", "bench-b"):
        data = default_station()
        data["station"]["name"], data["station"]["catalog"] = name, postgres_url
        station = Station(parse_station(data))
        results[name] = RunEngine(station, tmp_path / name, sample=f"S-{name}").run(make_procedure())
        station.close()
        assert results[name].status == "completed"
    app = create_app(postgres_url, "bench-a", host="127.0.0.1", linger_s=3600.0)
    with served(app) as url:
        state = httpx.get(url + "/api/state", timeout=30).json()
        figure = httpx.get(url + "/figure", params={"station": "bench-b", "run_id": results["bench-b"].run_id},
                           timeout=60)
    listed = {(r["station"], r["run_id"], r["sample"]) for r in state["recent"]}
    assert listed == {(name, result.run_id, f"S-{name}") for name, result in results.items()}
    assert [r["station"] for r in state["live"]] == ["bench-a"]  # the other bench's runs are its own page's
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")


def test_a_closed_page_stops_the_polling(tmp_path):
    app = create_app(default_url(tmp_path), STATION, host="127.0.0.1", interval_s=0.1)
    monitor = app.app.state.monitor
    polls = []
    poll = monitor.poll
    monitor.poll = lambda *args: polls.append(time.monotonic()) or poll(*args)
    hub = lambda: app.app.state.hub  # noqa: E731 - the lifespan's, once the server runs
    with served(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        time.sleep(0.5)
        assert polls == []  # nobody listens: nothing read
        with client.stream("GET", "/events") as response:
            lines = response.iter_lines()  # kept: a dropped iterator closes the stream
            next(lines)
            time.sleep(0.5)
            assert hub().listeners == 1 and len(polls) >= 3  # every 0.1 s while a page listens
        deadline = time.monotonic() + 20
        while hub().listeners and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub().listeners == 0
        stopped = len(polls)
        time.sleep(0.5)
        assert len(polls) <= stopped + 1  # the page closed: the polling stopped
