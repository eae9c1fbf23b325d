"""``labctl serve``: a read-only browser view of this station (docs/serve.md).

:func:`create_app` (labctl.web.app) builds the Starlette application; :func:`serve` runs it under uvicorn.
Starlette and uvicorn come with the ``serve`` extra (``pip install -e '.[serve]'``); this package imports them
only when used, so labctl itself does not need them.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TOKEN_BYTES = 32
"""Random bytes of a generated token (``secrets.token_urlsafe``: 43 characters)."""


def create_app(*args: Any, **kwargs: Any) -> Any:
    """:func:`labctl.web.app.create_app` (imported on first use)."""
    from labctl.web.app import create_app as create

    return create(*args, **kwargs)


def new_token() -> str:
    """A fresh token for a server bound beyond loopback."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def serve(catalog_url: str, station: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          echo: Callable[[str], None] = print, **options: Any) -> None:
    """Serve the page of ``station`` on ``host``:``port`` until Ctrl-C (uvicorn).

    Bound beyond loopback a token is generated and printed once, in the address to open (``echo``); it is not
    stored anywhere. ``options``: passed to :func:`create_app`."""
    import uvicorn

    from labctl.web.app import is_loopback

    token = None if is_loopback(host) else new_token()
    app = create_app(catalog_url, station, host=host, port=port, token=token, **options)
    if host in ("0.0.0.0", "::", ""):  # every interface: the address to open from another PC is this PC's name
        host_shown = socket.gethostname()
    else:
        host_shown = f"[{host}]" if ":" in host else host
    shown = host_shown
    if token is None:
        echo(f"labctl serve: station {station!r}, read-only, at http://{shown}:{port}/ (this machine only)")
    else:
        echo(f"labctl serve: station {station!r}, read-only, at http://{shown}:{port}/?token={token}")
        echo("  the token is printed only now: every request must carry it (plain HTTP: use it on a trusted "
             "network, or behind a TLS proxy)")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2,
                server_header=False)
