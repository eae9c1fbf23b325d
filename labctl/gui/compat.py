"""A guard against a reference-count bug of the Qt binding: PySide6 6.12 on CPython 3.11.

Measured here (PySide6 6.12.0, CPython 3.11.7): every call of a Qt method that returns nothing (``QLabel.setText``,
``QPainter.setPen``, ``QProgressBar.setValue``, ...) drops one reference to ``None`` that it never took, and
some paths of a redraw drop references to ``True`` (measured: one pyqtgraph redraw of one plot, ~300 of ``None``
and ~8 of ``True``). After some minutes of live plotting the count reaches zero and the interpreter aborts
("Fatal Python error: none_dealloc", or ``bool_dealloc`` at exit) — the bench window died that way 60 s into a
600 h hold on the virtual clock. From CPython 3.12 on these objects are immortal (PEP 683) and the bug is
harmless; on 3.11 :func:`keep_none_alive` gives ``None``, ``True`` and ``False`` a reserve of 2**40 references
once (what 3.12 does in effect: they are never freed anyway), enough for centuries of redraws at the window's
rate. It does nothing on 3.12+ or with another binding.
"""

from __future__ import annotations

import ctypes
import sys

NONE_RESERVE = 1 << 40
"""References added to each of ``None``, ``True``, ``False`` once (a 64-bit count: far from its limit)."""
_done = False


def needs_guard(api_name: str, version: tuple[int, ...] = tuple(sys.version_info)) -> bool:
    """Whether the guard is needed: a PySide6 binding on CPython before 3.12."""
    return api_name.lower().startswith("pyside") and tuple(version[:2]) < (3, 12) and \
        sys.implementation.name == "cpython"


def keep_none_alive() -> bool:
    """Give ``None``, ``True`` and ``False`` :data:`NONE_RESERVE` more references, once per process,
    when :func:`needs_guard`; whether it did (now or before)."""
    global _done
    from qtpy import API_NAME

    if not needs_guard(API_NAME):
        return False
    if not _done:
        # CPython 3.11: ob_refcnt is the first field of every object, a Py_ssize_t at the object's address
        for singleton in (None, True, False):
            ctypes.c_ssize_t.from_address(id(singleton)).value += NONE_RESERVE
        _done = True
    return True
