"""``labctl serve`` (issue 13, part H): the read-only page's endpoints through Starlette's TestClient — the lists it
shows (from the catalog, the status files and the run files), the token beyond loopback, GET only, the host check.

No socket is opened here (the TestClient calls the application in-process); a server bound to a non-loopback
address is never started: the app is built with that host setting instead.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from starlette.testclient import TestClient

from labctl.catalog import Catalog, default_url
from labctl.cli import main
from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from labctl.web import create_app
from labctl.web.app import is_loopback, token_cookie
from tests.engine_procedures import Ticks, make
from tests.helpers import default_station, make_procedure
from tests.test_auto_resume import interrupted_hold, write_station

STATION = "sim-bench"  # station.name of the default station
TOKEN = "t0ken-for-the-tests-0123456789abcdefghijkl"
LOOPBACK = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A completed J–V on the default simulated station (virtual clock), in a catalog of its own."""
    folder = tmp_path_factory.mktemp("runs")
    station = Station(parse_station(default_station()))
    result = RunEngine(station, folder, sample="A17").run(make_procedure())
    station.close()
    assert result.status == "completed"
    return folder, result


def _client(folder, host="127.0.0.1", token=None, base_url=LOOPBACK, **options):
    return TestClient(create_app(default_url(folder), STATION, host=host, port=8765, token=token, **options),
                      base_url=base_url)


def test_the_state_lists_the_catalogs_recent_runs_with_their_figures(runs):
    folder, result = runs
    stored = load_run(result.path).results["reverse"]  # what the file says, the source of truth
    with _client(folder) as client:
        state = client.get("/api/state").json()
    assert state["station"] == STATION and state["error"] is None
    (run,) = state["recent"]
    assert (run["procedure"], run["sample"], run["status"], run["station"]) == ("jv", "A17", "completed", STATION)
    assert run["figures"]["voc_V"] == pytest.approx(stored["voc_V"])
    assert run["figures"]["pce_pct"] == pytest.approx(stored["pce_pct"])
    assert run["key"] == f"{STATION}/{result.run_id}"
    # ended a moment ago: still in the live list, with its status file's values and its plot (J against V per scan)
    (live,) = state["live"]
    assert live["status"] == "completed" and live["progress"] == pytest.approx(1.0)
    assert live["plot"]["x"] == "voltage_V" and live["plot"]["y"] == "j_mA_cm2"
    assert sorted(live["labels"].values()) == ["scan 1 (reverse)", "scan 2 (forward)"]


def test_the_plot_of_a_run_is_its_files_rows(runs):
    folder, result = runs
    frame = load_run(result.path).streams["jv"]
    with _client(folder) as client:
        key = f"{STATION}/{result.run_id}"
        client.get("/api/state")
        body = client.get("/api/plot", params={"key": key}).json()
    points = np.array([p[1:] for p in body["points"]], dtype=float)
    assert len(points) == len(frame)  # fewer rows than the plot keeps: every one
    np.testing.assert_array_equal(points[:, 0], frame["voltage_V"].to_numpy())
    np.testing.assert_array_equal(points[:, 1], frame["j_mA_cm2"].to_numpy())
    np.testing.assert_array_equal(points[:, 2], frame["scan"].to_numpy())


def test_a_runs_figure_is_drawn_in_memory_and_nothing_is_written(runs):
    folder, result = runs
    before = sorted(p.name for p in result.path.parent.iterdir())
    with _client(folder) as client:
        answer = client.get("/figure", params={"station": STATION, "run_id": result.run_id})
        missing = client.get("/figure", params={"station": STATION, "run_id": "no-such-run"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(answer.content))
    assert image.size[0] > 400 and len(np.unique(np.asarray(image.convert("L")))) > 10  # a drawn figure, not a blank
    assert missing.status_code == 404
    assert sorted(p.name for p in result.path.parent.iterdir()) == before


def test_the_page_and_its_script_are_served_from_the_package_with_a_strict_policy(runs):
    folder, _ = runs
    with _client(folder) as client:
        page = client.get("/")
        script = client.get("/static/app.js")
    assert page.status_code == 200 and 'src="/static/app.js"' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from another server (no CDN)
    assert script.status_code == 200 and "EventSource" in script.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/events", "/api/state", "/api/plot", "/figure", "/static/app.js",
                                  "/api/abort", "/runs/x/abort"])
def test_nothing_but_get_is_answered(runs, method, path):
    folder, result = runs
    with _client(folder) as client:
        answer = client.request(method, path, params={"station": STATION, "run_id": result.run_id})
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"
    with Catalog(default_url(folder)) as catalog:
        assert catalog.get(STATION, result.run_id).status == "completed"


def test_a_loopback_server_answers_only_requests_for_a_loopback_host(runs):
    folder, _ = runs
    with _client(folder) as client:
        assert client.get("/api/state").status_code == 200
        assert client.get("/api/state", headers={"host": "localhost:8765"}).status_code == 200
        rebound = client.get("/api/state", headers={"host": "attacker.example:8765"})
    assert rebound.status_code == 400 and "host not allowed" in rebound.text


def test_beyond_loopback_every_request_needs_the_token(runs):
    folder, result = runs
    with pytest.raises(ValueError, match="token is required"):
        create_app(default_url(folder), STATION, host="0.0.0.0")
    paths = ["/", "/events", "/api/state", "/static/app.js", "/static/app.css",
             f"/figure?station={STATION}&run_id={result.run_id}", "/no-such-page"]
    with _client(folder, host="0.0.0.0", token=TOKEN, base_url="http://192.0.2.7:8765") as client:
        for path in paths:
            for headers in ({}, {"authorization": "Bearer wrong"}, {"cookie": f"{token_cookie(8765)}=wrong"}):
                answer = client.get(path, headers=headers)
                assert answer.status_code == 401, (path, headers)
                assert TOKEN not in answer.text and "EventSource" not in answer.text
            assert client.post(path).status_code == 401  # no write either, and nothing said without the token
            assert client.get(path, params={"token": TOKEN[:-1]}).status_code == 401
        assert client.get("/api/state", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/static/app.js", params={"token": TOKEN}).status_code == 200
        # the page opened with ?token= sets the cookie and drops the token from the address
        opened = client.get("/", params={"token": TOKEN}, follow_redirects=False)
        assert opened.status_code == 303 and opened.headers["location"] == "/"
        cookie = opened.headers["set-cookie"]
        assert cookie.startswith(f"{token_cookie(8765)}={TOKEN};") and "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        with_cookie = {"cookie": f"{token_cookie(8765)}={TOKEN}"}
        assert client.get("/", headers=with_cookie).status_code == 200
        assert client.get("/api/state", headers=with_cookie).json()["recent"][0]["run_id"] == result.run_id
        assert client.post("/api/state", headers=with_cookie).status_code == 405


def test_which_hosts_are_loopback():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    # only classified, never contacted: the wildcards, a host name, and the first IPv4 address past 127/8
    past_loopback = str(ipaddress.ip_address("127.255.255.255") + 1)
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "bench-3.lab", past_loopback))


def test_a_running_run_is_live_with_its_progress_last_values_and_new_points_only(tmp_path):
    station = Station(parse_station(default_station()))
    engine = RunEngine(station, tmp_path, sample="cell-9")
    paused, at = threading.Event(), {"n": 5}

    def pause_at(name, doc):
        if name == "event" and doc.seq_num == at["n"]:
            engine.pause()
        if name == "log" and doc.message == "paused":
            paused.set()

    engine.subscribe(pause_at)
    engine.start(make(Ticks, points=20, interval_s=1.0))
    try:
        assert paused.wait(30)
        monitor_app = create_app(default_url(tmp_path), STATION, host="127.0.0.1", linger_s=0.0)
        with TestClient(monitor_app, base_url=LOOPBACK) as client:
            state = client.get("/api/state").json()
            (live,) = state["live"]
            assert (live["procedure"], live["sample"], live["status"]) == ("ticks", "cell-9", "running")
            assert live["progress"] == 0.25 and live["last"]["ticks"]["index"] == 4 and live["paused"] is True
            assert live["plot"]["stream"] == "ticks" and live["plot"]["y"] == "value_V"  # the file's NeXus signal
            monitor = monitor_app.app.state.monitor
            sent: dict[str, int] = {}
            first = _flushed_points(monitor, sent, live["key"], 5)
            assert [p[0] for p in first] == [0, 1, 2, 3, 4]
            assert [p[2] for p in first] == pytest.approx([0.0, 0.001, 0.002, 0.003, 0.004])
            assert monitor.points_for(sent) == {}  # nothing new: nothing sent again
            paused.clear()
            at["n"] = 12
            engine.resume()
            assert paused.wait(30)
            new = _flushed_points(monitor, sent, live["key"], 7)
            assert [p[0] for p in new] == list(range(5, 12))  # only the rows written since
    finally:
        engine.resume()
        result = engine.join(30)
    assert result.status == "completed"
    with TestClient(create_app(default_url(tmp_path), STATION, host="127.0.0.1", linger_s=0.0),
                    base_url=LOOPBACK) as client:
        assert client.get("/api/state").json()["live"] == []  # ended, and not lingering
    station.close()


def _flushed_points(monitor, sent, key, n, timeout_s=10.0):
    """The next ``n`` points of ``key`` once the writer has flushed them (it does every second)."""
    got: list = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        monitor.poll()
        got += monitor.points_for(sent).get(key, [])
        time.sleep(0.1)
    return got


def test_labctl_serve_beyond_loopback_prints_the_token_once_and_the_app_requires_it(tmp_path, monkeypatch):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))  # never bound
    station_file = tmp_path / "station.yaml"
    station_file.write_text((__import__("pathlib").Path(__file__).parents[1] / "station.yaml").read_text())
    res = CliRunner().invoke(main, ["serve", "--station", str(station_file), "--host", "0.0.0.0", "--port", "9999"],
                             catch_exceptions=False)
    assert res.exit_code == 0 and (seen["host"], seen["port"]) == ("0.0.0.0", 9999)
    (line, *rest) = res.stdout.splitlines()
    # every interface: the address printed is this PC's name, the one to open from another PC
    assert line.startswith(f"labctl serve: station 'sim-bench', read-only, at http://{socket.gethostname()}:9999/?token=")
    token = line.rsplit("token=", 1)[1]
    assert len(token) >= 43 and res.stdout.count(token) == 1
    with TestClient(seen["app"], base_url="http://192.0.2.7:9999") as client:
        assert client.get("/api/state").status_code == 401
        assert client.get("/api/state", headers={"authorization": f"Bearer {token}"}).status_code == 200
    seen.clear()
    res = CliRunner().invoke(main, ["serve", "--station", str(station_file)], catch_exceptions=False)
    assert res.stdout == "labctl serve: station 'sim-bench', read-only, at http://127.0.0.1:8765/ (this machine only)\n"
    assert seen["host"] == "127.0.0.1" and "token" not in res.stdout


def test_a_run_whose_writer_died_shows_interrupted_with_its_plot_and_the_catalog_is_left_alone(tmp_path):
    station_file = write_station(tmp_path, auto_resume=False)
    path = interrupted_hold(station_file, "cell-4", rows=7)
    folder = tmp_path / "runs"
    voc = load_run(path).streams["hold"]["voltage_V"].to_numpy()
    with _client(folder) as client:
        state = client.get("/api/state").json()
        (live,) = state["live"]
        body = client.get("/api/plot", params={"key": live["key"]}).json()
    assert [r["status"] for r in state["recent"]] == ["interrupted"]  # as the file says, not the stale row
    assert live["status"] == "interrupted" and live["sample"] == "cell-4" and live["path"] == str(path)
    assert live["plot"]["y"] == "voltage_V" and live["plot"]["x_hours"] is True  # a hold at open circuit: Voc
    assert [p[2] for p in body["points"]] == pytest.approx(list(voc)) and len(voc) == 7
    with Catalog(default_url(folder)) as catalog:  # read-only: the row still says what the run wrote
        assert catalog.get(STATION, live["run_id"]).status == "running"


def test_a_catalog_that_cannot_be_reached_is_said_on_the_page_which_still_answers(tmp_path):
    url = "postgresql+psycopg://labctl@127.0.0.1:1/nowhere"  # nothing listens on port 1
    with TestClient(create_app(url, STATION, host="127.0.0.1"), base_url=LOOPBACK) as client:
        state = client.get("/api/state").json()
        assert client.get("/").status_code == 200
    assert state["live"] == [] and state["recent"] == []
    assert state["error"].startswith("run catalog postgresql+psycopg://labctl@127.0.0.1:1/nowhere: cannot open it")


def test_head_is_answered_like_get_without_a_body(runs):
    folder, _ = runs
    with _client(folder) as client:
        head = client.head("/static/app.js")
        get = client.get("/static/app.js")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]


def test_a_missing_catalog_is_not_created(tmp_path):
    with _client(tmp_path / "nothing-yet") as client:
        state = client.get("/api/state").json()
    assert state == {"station": STATION, "live": [], "recent": [], "error": None, "version": state["version"]}
    assert not (tmp_path / "nothing-yet").exists()


def test_the_state_is_fresh_for_a_script_without_a_page_listening(tmp_path):
    with _client(tmp_path, interval_s=0.0, catalog_interval_s=0.0) as client:
        assert client.get("/api/state").json()["recent"] == []
        with Catalog(default_url(tmp_path)) as catalog:
            catalog.record(station="bench-2", run_id="late", procedure="jv", sample="S", status="completed",
                           start_time="2026-12-01T10:00:00+00:00", path="")
        assert [r["run_id"] for r in client.get("/api/state").json()["recent"]] == ["late"]
