"""Small I/O helpers shared by the serial-instrument drivers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def timeout_at_least(adapter: Any, seconds: float) -> Iterator[None]:
    """Raise ``adapter``'s VISA read timeout (ms) to ``seconds`` for the duration, then restore it."""
    connection = getattr(adapter, "connection", None)
    old = getattr(connection, "timeout", None)
    if isinstance(old, bool) or not isinstance(old, (int, float)):
        yield  # no numeric timeout to raise (None = infinite, or a test double)
        return
    connection.timeout = max(old, seconds * 1000.0)
    try:
        yield
    finally:
        connection.timeout = old

