"""The Starlette application of ``labctl serve``: a read-only page of one station, updated by server-sent events.

Endpoints (GET and HEAD only; any other method is answered 405 on every path):

==================  ==============================================================================================
``/``               the page (``static/index.html``; its script and style sheet are in the package, no CDN)
``/static/…``       ``app.js`` (the page and its <canvas> plots, our own code), ``app.css``
``/events``         server-sent events: ``live`` (this station's live runs: status-file values, plot description),
                    ``recent`` (the catalog's newest runs), ``points`` (per run, only the plot points after those
                    already sent)
``/api/state``      the same lists as one JSON object (for scripts)
``/api/plot``       ``?key=<station>/<run id>``: a live run's plot description and all its kept points
``/figure``         ``?station=…&run_id=…``: the run's figure as PNG (the PNG beside its file when it is newer than
                    the file, else drawn by ``labctl.plotting.figure`` in memory; nothing is written)
==================  ==============================================================================================

Security (:class:`Guard`, around everything): bound to a loopback address the server answers only requests whose
``Host`` is a loopback name (a web page elsewhere cannot reach it through DNS rebinding); bound to any other address
it requires the token (``secrets.token_urlsafe``), given as ``?token=``, as ``Authorization: Bearer``, or as the
cookie the page gets when opened with ``?token=`` (then redirected to drop it from the address bar), compared in
constant time on every request, the events and the static files included. Every answer carries a
``Content-Security-Policy`` allowing only this server's own script and style, ``X-Content-Type-Options: nosniff``,
``X-Frame-Options: DENY`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from labctl.web.monitor import POLL_INTERVAL_S, Monitor

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SAFE_METHODS = ("GET", "HEAD")
KEEPALIVE_S = 15.0
"""A comment line is sent on an idle event stream this often (s), so proxies and browsers keep it open."""
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
FIGURE_CACHE = 32
"""Figures drawn in memory kept (the newest), keyed by run file and its modification time."""
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                 b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine only: then no token is needed."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve beyond this machine


def token_cookie(port: int | None) -> str:
    """The token's cookie name: one per port (cookies are shared by the ports of a host, and so would be the
    tokens of several ``labctl serve`` on one PC)."""
    return f"labctl_token_{port or 0}"


class Guard:
    """ASGI middleware: host check, token check, GET/HEAD only, security headers (module docstring).

    Parameters
    ----------
    app
        The application it guards.
    token
        The token every request must carry; None: none needed (bound to loopback).
    allowed_hosts
        ``Host`` names accepted (without port); None: any.
    cookie
        The token cookie's name.
    """

    def __init__(self, app: Any, token: str | None, allowed_hosts: tuple[str, ...] | None, cookie: str) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = tuple(h.lower() for h in allowed_hosts) if allowed_hosts is not None else None
        self.cookie = cookie

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets here
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = Headers(scope=scope)
        if self.allowed_hosts is not None and _host_name(headers.get("host", "")) not in self.allowed_hosts:
            await _plain(send, 400, "host not allowed: this server answers requests for 127.0.0.1/localhost only")
            return
        query_token = None
        if self.token is not None:
            query_token = _query_value(scope, "token")
            given = [query_token, _bearer(headers.get("authorization", "")), _cookie(headers, self.cookie)]
            if not any(g is not None and hmac.compare_digest(g.encode(), self.token.encode()) for g in given):
                await _plain(send, 401, "token required: open the address labctl serve printed (with ?token=...)",
                             [(b"www-authenticate", b'Bearer realm="labctl"')])
                return
        if scope["method"] not in SAFE_METHODS:
            await _plain(send, 405, "read-only: GET only", [(b"allow", b"GET, HEAD")])
            return
        if query_token is not None and scope["path"] == "/":  # keep it in a cookie, not in the address bar
            cookie = f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode()
            await _plain(send, 303, "see /", [(b"location", b"/"), (b"set-cookie", cookie)])
            return

        async def send_secured(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_secured)


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _query_value(scope: dict[str, Any], name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


def _bearer(value: str) -> str | None:
    kind, _, credential = value.partition(" ")
    return credential.strip() if kind.lower() == "bearer" and credential.strip() else None


def _cookie(headers: Headers, name: str) -> str | None:
    for header in headers.getlist("cookie"):
        for part in header.split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
    return None


async def _plain(send: Any, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = (text + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *SECURITY_HEADERS, *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Hub:
    """Wakes the event streams when the monitor's version changes; polls only while a page listens."""

    def __init__(self, monitor: Monitor, interval_s: float) -> None:
        self.monitor = monitor
        self.interval_s = interval_s
        self.listeners = 0
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            if self.listeners:
                try:
                    changed = await run_in_threadpool(self.monitor.poll)
                except Exception:  # noqa: BLE001 - a bad file or catalog moment must not stop the page
                    log.exception("labctl serve: poll failed")
                    changed = False
                if changed:
                    self._changed.set()
                    self._changed = asyncio.Event()
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)

    def wake(self) -> None:
        self._wake.set()

    async def wait(self, version: int, timeout_s: float) -> int:
        if self.monitor.version == version:
            changed = self._changed
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout_s)
        return self.monitor.version


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


def create_app(catalog_url: str, station: str, *, host: str = "127.0.0.1", port: int | None = None,
               token: str | None = None, interval_s: float = POLL_INTERVAL_S, monitor: Monitor | None = None,
               **monitor_options: Any) -> Any:
    """The ``labctl serve`` application of ``station`` reading ``catalog_url``, guarded for ``host``.

    Parameters
    ----------
    catalog_url
        The catalog (SQLAlchemy URL). It is opened once it exists; never created or written.
    station
        This station's name: its running runs are the page's live runs.
    host, port
        Where it is (to be) bound. A non-loopback ``host`` requires ``token``.
    token
        The token every request must carry (required, and only allowed, when ``host`` is not loopback).
    interval_s
        How often the status files and the tails of the run files are read while a page listens (s).
    monitor_options
        Passed to :class:`labctl.web.monitor.Monitor` (``catalog_interval_s``, ``linger_s``, ...).

    Raises
    ------
    ValueError
        ``host`` is not loopback and no token is given.
    """
    loopback = is_loopback(host)
    if not loopback and not token:
        raise ValueError(f"--host {host}: beyond this machine a token is required")
    monitor = monitor or Monitor(catalog_url, station, **monitor_options)
    figures: OrderedDict[tuple[str, float], bytes] = OrderedDict()
    figure_lock = threading.Lock()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})

    async def fresh() -> None:
        """Poll now unless a poll is recent (no page listening: nobody else polls)."""
        if time.monotonic() - monitor.polled_at >= interval_s:
            await run_in_threadpool(monitor.poll, monitor.version == 0)

    async def state(request: Request) -> Response:
        await fresh()
        return JSONResponse(monitor.state(), headers={"cache-control": "no-store"})

    async def plot(request: Request) -> Response:
        key = request.query_params.get("key", "")
        await fresh()
        live = {e["key"]: e for e in monitor.state()["live"]}
        if key not in live:
            return PlainTextResponse(f"no live run {key!r}", status_code=404)
        points = monitor.points_for({}).get(key, [])
        return JSONResponse({"key": key, "plot": live[key].get("plot"), "labels": live[key].get("labels", {}),
                             "points": points}, headers={"cache-control": "no-store"})

    async def events(request: Request) -> Response:
        hub: _Hub = request.app.state.hub

        async def stream() -> AsyncIterator[str]:
            hub.listeners += 1
            try:
                if monitor.version == 0:
                    await run_in_threadpool(monitor.poll, True)
                sent: dict[str, int] = {}
                shown: dict[str, str] = {}
                version = -1
                yield "retry: 3000\n\n"
                while True:
                    new = await hub.wait(version, KEEPALIVE_S) if version >= 0 else monitor.version
                    if new == version:
                        yield ": keep-alive\n\n"
                        continue
                    version = new
                    now = monitor.state()
                    for part in ("live", "recent"):
                        payload = {"station": now["station"], "error": now["error"], part: now[part]}
                        text = _sse(part, payload)
                        if shown.get(part) != text:
                            shown[part] = text
                            yield text
                    points = monitor.points_for(sent)
                    if points:
                        yield _sse("points", points)
            finally:
                hub.listeners -= 1

        hub.wake()
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    async def figure(request: Request) -> Response:
        station_ = request.query_params.get("station", "")
        run_id = request.query_params.get("run_id", "")
        row = await run_in_threadpool(monitor.find, station_, run_id)
        if row is None or not row.path:
            return PlainTextResponse(f"no run {station_}/{run_id} in the catalog", status_code=404)
        path = Path(row.path)
        if not path.is_file():
            return PlainTextResponse(f"run {station_}/{run_id}: its file is not on this machine", status_code=404)
        if row.status == "running":
            return PlainTextResponse(f"run {station_}/{run_id} is running: see its live plot", status_code=404)
        beside = path.with_suffix(".png")
        mtime = path.stat().st_mtime
        if beside.is_file() and beside.stat().st_mtime >= mtime:
            return FileResponse(beside, media_type="image/png", headers={"cache-control": "no-store"})
        key = (str(path), mtime)
        with figure_lock:
            png = figures.get(key)
        if png is None:
            png = await run_in_threadpool(_draw, path)
            with figure_lock:
                figures[key] = png
                while len(figures) > FIGURE_CACHE:
                    figures.popitem(last=False)
        return Response(png, media_type="image/png", headers={"cache-control": "no-store"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub = _Hub(monitor, interval_s)
        app.state.hub = hub
        task = asyncio.create_task(hub.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await run_in_threadpool(monitor.close)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/api/state", state, methods=["GET"]),
        Route("/api/plot", plot, methods=["GET"]),
        Route("/figure", figure, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.monitor = monitor
    app.state.hub = _Hub(monitor, interval_s)  # replaced by the lifespan's (this one serves a client without it)
    return Guard(app, token if not loopback else None, LOOPBACK_NAMES if loopback else None, token_cookie(port))


def _draw(path: Path) -> bytes:
    """The run's figure (``labctl.plotting.figure``) as PNG bytes, drawn in memory."""
    from labctl.plotting import png_bytes
    from labctl.storage import load_run

    return png_bytes(load_run(path, lazy=True))
