"""``labctl serve`` in a real headless browser (Debian's chromium and chromedriver through selenium), against a
uvicorn server on 127.0.0.1 while a simulated run runs on the real clock: the page shows the running run, its plot
grows as points arrive (server-sent events, no reload), and when it ends its figure opens from the recent runs; a
server built for a non-loopback address refuses the browser without the token and works once opened with it.

Screenshots go to ``$LABCTL_WEB_SCREENSHOTS`` when set (else the test's temporary folder).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from labctl.catalog import Catalog, default_url
from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.web import create_app
from procedures.hold import HoldProcedure
from tests.helpers import default_station, make_procedure

pytestmark = pytest.mark.tcp
STATION = "sim-bench"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@contextmanager
def served(app) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1100", "--force-device-scale-factor=1", "--enable-precise-memory-info",
                "--js-flags=--expose-gc"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("LABCTL_WEB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _card(driver):
    cards = driver.find_elements(By.CSS_SELECTOR, "#live .card")
    return cards[0] if cards else None


def _canvas_ink(driver, card) -> int:
    """Pixels of the card's plot that are drawn in a line colour (not white, grey or the grid)."""
    return driver.execute_script(
        "const c = arguments[0].querySelector('canvas'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
        "for (let i = 0; i < d.length; i += 4) { if (d[i+3] > 0 && Math.abs(d[i] - d[i+2]) > 60) n++; } return n;",
        card)


def test_the_page_shows_a_running_run_and_its_plot_grows_then_its_figure(tmp_path):
    data = default_station()
    data["simulation"]["clock"] = "real"
    station = Station(parse_station(data))
    engine = RunEngine(station, tmp_path, sample="QD-7")
    hold = HoldProcedure()
    hold.duration_h, hold.interval_s = 14 / 3600, 0.2
    window = {}  # a lamp dip from 5 s to 8 s after the run starts (station clock: real time here)

    def lamp_dip() -> str | None:
        t = station.clock.now() - window.setdefault("t0", station.clock.now())
        return "lamp dip (test)" if 5.0 <= t < 8.0 else None

    engine.add_suspender(lamp_dip)
    app = create_app(default_url(tmp_path), STATION, host="127.0.0.1", interval_s=0.5, catalog_interval_s=1.0)
    shots = _shots(tmp_path)
    started = False
    try:
        with served(app) as url, browser() as driver:
            driver.get(url + "/")  # opened before the run starts: it appears without a reload
            _wait(lambda: driver.find_element(By.ID, "connection").text == "live", 15, "the event stream")
            assert "nothing running on this station" in driver.find_element(By.ID, "live").text
            engine.start(hold)
            started = True
            card = _wait(lambda: _card(driver), 20, "the running run's card")
            _wait(lambda: card.get_attribute("data-status") == "running", 10, "status running")
            assert "hold · QD-7" in card.find_element(By.CSS_SELECTOR, "h3").text
            first = int(_wait(lambda: int(card.get_attribute("data-points") or 0) >= 3 and
                              card.get_attribute("data-points"), 20, "the first points"))
            time.sleep(2.5)
            second = int(card.get_attribute("data-points"))
            assert second > first + 5  # 5 readings a second arrive without a reload
            assert driver.execute_script("return performance.getEntriesByType('navigation').length") == 1
            text = card.text
            assert "progress" in text and "ETA" in text and "hold: voltage_V" in text
            assert _canvas_ink(driver, card) > 200  # the line is drawn
            assert driver.find_element(By.ID, "connection").text == "live"
            driver.save_screenshot(str(shots / "serve_running.png"))
            _wait(lambda: "now: lamp dip (test)" in card.text, 20, "the suspension on the card")
            during = int(card.get_attribute("data-points"))
            driver.save_screenshot(str(shots / "serve_suspended.png"))
            _wait(lambda: "suspensions" in card.text and "now: lamp dip" not in card.text, 20, "the run to resume")
            _wait(lambda: "interruptions" in card.find_element(By.CSS_SELECTOR, ".legend").text, 10,
                  "the suspension shaded on the plot (its row flushed and read)")
            assert int(card.get_attribute("data-points")) >= during
            time.sleep(1.0)
            driver.save_screenshot(str(shots / "serve_resumed.png"))
            result = engine.join(60)
            assert result.status == "completed"
            _wait(lambda: card.get_attribute("data-status") == "completed", 15, "the card to say completed")
            with Catalog(default_url(tmp_path)) as catalog:
                rows = catalog.get(STATION, result.run_id)
            assert rows.status == "completed"
            final = int(card.get_attribute("data-points"))
            assert final >= 50  # 14 s at 0.2 s: ~70 readings
            row = _wait(lambda: [r for r in driver.find_elements(By.CSS_SELECTOR, "#recent tbody tr")
                                 if "completed" in r.text], 15, "the run in the recent runs")[0]
            row.find_element(By.TAG_NAME, "button").click()
            _wait(lambda: driver.execute_script(
                "const i = document.getElementById('figure'); return i.complete && i.naturalWidth > 400"),
                30, "the run's figure")
            driver.execute_script("document.getElementById('figure-box').scrollIntoView()")
            driver.save_screenshot(str(shots / "serve_completed_figure.png"))
            logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert logs == []  # no script error, nothing blocked by the page's policy
    finally:
        if started:
            engine.abort()
            engine.join(30)
        station.close()


def test_beyond_loopback_the_browser_needs_the_token_then_the_page_works(tmp_path):
    station = Station(parse_station(default_station()))
    result = RunEngine(station, tmp_path, sample="A17").run(make_procedure())
    station.close()
    token = "browser-test-token-0123456789abcdefghijklmnop"
    # built as for --host 0.0.0.0 (the token required), served on 127.0.0.1 only
    app = create_app(default_url(tmp_path), STATION, host="0.0.0.0", token=token, interval_s=0.5)
    with served(app) as url, browser() as driver:
        driver.get(url + "/")
        assert "token required" in driver.find_element(By.TAG_NAME, "body").text
        assert driver.find_elements(By.ID, "recent") == []
        driver.get(url + "/static/app.js")
        assert "EventSource" not in driver.page_source
        driver.get(url + f"/?token={token}")
        assert driver.current_url == url + "/"  # the token left the address bar for a cookie
        _wait(lambda: driver.find_element(By.ID, "connection").text == "live", 15, "the event stream")
        _wait(lambda: result.run_id in driver.find_element(By.ID, "recent").text, 15, "the run in the list")
        driver.save_screenshot(str(_shots(tmp_path) / "serve_token.png"))


def test_a_600_h_run_stays_bounded_in_the_page_and_its_redraw_is_fast(tmp_path):
    """A hold of 600 h at one reading per 10 s (216 000 rows) still being written, then 20 000 more rows arriving
    while the page watches: the page keeps at most 4000 points, its script's heap does not grow with the rows and
    a redraw of the full plot stays fast (measured in the browser)."""
    from labctl.web.tails import MAX_POINTS
    from tests.test_web_tails import _append, _hold_file

    writer = _hold_file(tmp_path / "long-hold.h5", 216_000)
    with Catalog(default_url(tmp_path)) as catalog:
        catalog.record(station=STATION, run_id="long-hold", procedure="hold", sample="L-600", status="running",
                       start_time="2026-11-07T00:00:00+00:00", path=str(writer.path))
    app = create_app(default_url(tmp_path), STATION, host="127.0.0.1", interval_s=0.3, catalog_interval_s=1.0)
    key = f"{STATION}/long-hold"
    try:
        with served(app) as url, browser() as driver:
            driver.get(url + "/")
            card = _wait(lambda: _card(driver), 20, "the long run's card")
            _wait(lambda: int(card.get_attribute("data-points") or 0) > 1000, 20, "the run's kept points")
            assert int(card.get_attribute("data-points")) <= MAX_POINTS
            heaps = []
            for batch in range(2):  # 10 000 rows more, twice (200 every 0.05 s); the heap after each, collected
                first = 216_000 + 10_000 * batch
                for k in range(50):
                    _append(writer, first + 200 * k, 200)
                    time.sleep(0.05)
                _wait(lambda last=first + 9999: int(card.get_attribute("data-last-row") or 0) == last, 20,
                      "the newest row")
                assert int(card.get_attribute("data-points")) <= MAX_POINTS
                heaps.append(driver.execute_script("window.gc(); return performance.memory.usedJSHeapSize"))
            draw_ms = driver.execute_script(
                "const t0 = performance.now(); for (let i = 0; i < 20; i++) draw(arguments[0]);"
                "return (performance.now() - t0) / 20;", key)
            driver.save_screenshot(str(_shots(tmp_path) / "serve_600h.png"))
            print(f"600 h hold in the page: {card.get_attribute('data-points')} points, redraw {draw_ms:.1f} ms, "
                  f"JS heap after 10 000 / 20 000 more rows {heaps[0] / 1e6:.2f} / {heaps[1] / 1e6:.2f} MB")
            assert draw_ms < 100
            assert heaps[1] < heaps[0] * 1.1 + 200e3  # flat: kept unthinned, 10 000 points would add ~1 MB
    finally:
        writer.close("completed")
