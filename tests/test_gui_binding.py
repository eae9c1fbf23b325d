"""The Qt binding keeps its references: a Qt method that returns nothing must not drop a reference to None.

PySide6 6.12.0 does (one per call), which aborts CPython 3.11 ("Fatal Python error: none_dealloc") a minute into
a live plot; the gui extra excludes it. This fails on any binding with that fault, in milliseconds."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qtpy import QtWidgets  # noqa: E402


def test_qt_calls_that_return_nothing_keep_nones_reference_count(qapp):
    widget = QtWidgets.QWidget()
    label = QtWidgets.QLabel(widget)
    before = sys.getrefcount(None)
    for _ in range(2000):  # far fewer than it takes to free None: a faulty binding loses 4000 here
        widget.setWindowTitle("labctl")
        label.setText("x")
    lost = before - sys.getrefcount(None)
    assert lost < 100, f"{lost} references to None lost in 4000 Qt calls"
