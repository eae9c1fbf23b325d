"""The SCPI error queue as every labctl driver reads it: ``SYST:ERR?`` until ``0,"No error"``; numeric replies.

One mixin for drivers of instruments that keep their errors in a standard SCPI queue (IEEE 488.2 / SCPI-99
``SYSTem:ERRor[:NEXT]?``, answered ``<code>,"<message>"``): :meth:`check_errors` returns the queued entries and
never raises for them, :meth:`check_set_errors` raises the driver's error class listing them.
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

from drivers.keithley2400 import MAX_ERROR_READS, ReplyError, format_errors, parse_error_entry

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class ScpiErrorQueueMixin:
    """``check_errors`` / ``check_set_errors`` from the ``SYST:ERR?`` queue; put it before the PyMeasure base.

    error_query: the query the instrument takes (e.g. ``":SYST:ERR?"``); error_class: raised by
    :meth:`check_set_errors`.
    """

    error_query: ClassVar[str] = "SYST:ERR?"
    error_class: ClassVar[type[Exception]] = RuntimeError

    def _ask_float(self, command: str, finite: bool = True) -> float:
        """The number the instrument answers to ``command``; :class:`ReplyError` for an unreadable reply, and
        (``finite``) for NaN or infinity (SCPI's 9.91E37 "not a number" is a finite float: callers that expect it
        test for it)."""
        reply = self.ask(command)
        try:
            value = float(reply.strip())
        except ValueError:
            raise ReplyError(f"{self.name}: unreadable reply to {command!r}: {reply!r}") from None
        if finite and not math.isfinite(value):
            raise ReplyError(f"{self.name}: non-finite reply to {command!r}: {reply!r}")
        return value

    def check_errors(self) -> list[tuple[int, str]]:
        """The queue read until code 0: its (code, message) entries (never raises for a queued error)."""
        errors: list[tuple[int, str]] = []
        for _ in range(MAX_ERROR_READS):
            code, message = parse_error_entry(self.ask(self.error_query), instrument=self.name)
            if code == 0:
                break
            log.error("%s: %d, %s", self.name, code, message)
            errors.append((code, message))
        return errors

    def check_set_errors(self, context: str = "a setting") -> list[tuple[int, str]]:
        """Raise :attr:`error_class` listing the queued errors; [] when there are none."""
        errors = self.check_errors()
        if errors:
            raise self.error_class(format_errors(self.name, context, errors))
        return errors
