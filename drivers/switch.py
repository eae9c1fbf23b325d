"""The switch-matrix capability on top of four primitives each switch driver implements, every change read back.

A switch driver (a Keithley 7001 with a 7011-S card, a serial relay board, ...) subclasses
:class:`SwitchMatrixBase` *before* its PyMeasure base and implements

- ``_close(channels: frozenset[int]) -> None``: close these relays (one command or several);
- ``_open(channels: frozenset[int]) -> None``: open these relays;
- ``_open_all() -> None``: open every relay;
- ``closed_channels() -> frozenset[int]``: the closed relays as the instrument reports them (a query).

Channels are ints, numbered as the driver documents (labctl never sees a card's own channel notation). On top of
these the base gives the methods procedures and the substrate runner call (:class:`labctl.capabilities.SwitchMatrix`):
:meth:`close_channels`, :meth:`open_channels`, :meth:`open_all`, :meth:`select` (break-before-make within a
group), :meth:`disconnect_all` and :meth:`safe_state`. Every one of them reads the relays back after the change
and raises :class:`SwitchReadbackError` (one line: what was commanded, what reads back) when they are not as
commanded — e.g. a welded or a stuck relay, or a card that missed the command. Channel numbers are checked
against :attr:`SwitchMatrixBase.CHANNELS` (when the driver gives them) before anything is sent.

A switch may be shared by several threads (pixels on different SMUs measured concurrently, one thread per SMU):
each of the methods holds the switch's own lock for its whole change-and-read-back sequence, so the sequences of
two threads never interleave.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from typing import Any


class SwitchReadbackError(RuntimeError):
    """The relays do not read back as commanded (a stuck or welded relay, a missed command)."""


def format_channel_set(channels: Iterable[int]) -> str:
    """``"1, 3, 12"`` for a set of channels, ``"none"`` for the empty set."""
    ordered = sorted(channels)
    return ", ".join(str(c) for c in ordered) if ordered else "none"


class SwitchMatrixBase:
    """The switch-matrix methods, on the primitives ``_close``, ``_open``, ``_open_all`` and ``closed_channels``.

    CHANNELS: the channel numbers the switch has, a class or an instance attribute (None: not known to the
    driver; then no channel is refused before it is sent, and the instrument's own error is what tells).
    Every method below raises ValueError for a channel outside CHANNELS before any I/O, and
    :class:`SwitchReadbackError` when the read-back is not as commanded.
    """

    CHANNELS: Collection[int] | None = None

    @classmethod
    def channels_for_settings(cls, settings: Any = None) -> Collection[int] | None:
        """The channels a switch of this class has with these station.yaml ``settings`` (the registration's
        settings object, or None), for checking a layout before any I/O; None: not known. Default: CHANNELS."""
        return cls.CHANNELS

    # -- primitives (the driver implements these) -------------------------------------------------------------
    def _close(self, channels: frozenset[int]) -> None:
        raise NotImplementedError

    def _open(self, channels: frozenset[int]) -> None:
        raise NotImplementedError

    def _open_all(self) -> None:
        raise NotImplementedError

    def closed_channels(self) -> frozenset[int]:
        """The closed channels as the instrument reports them (a query, nothing switched)."""
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------------------------
    @property
    def _switch_lock(self) -> threading.RLock:
        lock = self.__dict__.get("_switch_lock_obj")
        if lock is None:  # dict.setdefault is atomic: two threads asking at once get the same lock
            lock = self.__dict__.setdefault("_switch_lock_obj", threading.RLock())
        return lock

    def format_channels(self, channels: Iterable[int]) -> str:
        """How an error message names a set of channels (a driver may add its own notation)."""
        return format_channel_set(channels)

    def _switch_name(self) -> str:
        return str(getattr(self, "name", type(self).__name__))

    def _checked(self, channels: Iterable[int], what: str = "channel") -> frozenset[int]:
        """``channels`` as a frozenset of ints; ValueError (one line) for a non-int or one the switch lacks."""
        if isinstance(channels, (int, str)):  # a lone int (or "3") is a common slip: say what is wanted
            raise ValueError(f"{self._switch_name()}: {what}s must be an iterable of ints, got {channels!r}")
        result = set()
        for channel in channels:
            if isinstance(channel, bool) or not isinstance(channel, int):
                raise ValueError(f"{self._switch_name()}: {what} {channel!r} is not an int")
            result.add(int(channel))
        allowed = self.CHANNELS
        if allowed is not None:
            bad = sorted(c for c in result if c not in allowed)
            if bad:
                lo, hi = min(allowed), max(allowed)
                raise ValueError(f"{self._switch_name()}: {what} {format_channel_set(bad)} not on this switch "
                                 f"(allowed: {lo}..{hi})")
        return frozenset(result)

    def _readback_error(self, commanded: str, closed: frozenset[int]) -> SwitchReadbackError:
        return SwitchReadbackError(f"{self._switch_name()}: {commanded}, but reads back closed: "
                                   f"{self.format_channels(closed)}")

    # -- the capability -------------------------------------------------------------------------------------
    def close_channels(self, channels: Iterable[int]) -> None:
        """Close ``channels`` (others stay as they are), then read back that each of them is closed."""
        wanted = self._checked(channels)
        with self._switch_lock:
            if wanted:
                self._close(wanted)
            closed = self.closed_channels()
            if not wanted <= closed:
                raise self._readback_error(f"closed {self.format_channels(wanted)}", closed)

    def open_channels(self, channels: Iterable[int]) -> None:
        """Open ``channels`` (others stay as they are), then read back that none of them is closed."""
        wanted = self._checked(channels)
        with self._switch_lock:
            if wanted:
                self._open(wanted)
            closed = self.closed_channels()
            if wanted & closed:
                raise self._readback_error(f"opened {self.format_channels(wanted)}", closed)

    def open_all(self) -> None:
        """Open every relay, then read back that none is closed."""
        with self._switch_lock:
            self._open_all()
            closed = self.closed_channels()
            if closed:
                raise self._readback_error("opened all", closed)

    def select(self, channel: int, group: Iterable[int] | None = None) -> None:
        """Connect ``channel`` alone within ``group``, break-before-make.

        group: the channels that must never be closed together (e.g. the pixels one SMU serves; ``channel`` is
        counted in it); None: every channel of the switch. Opens the group's closed channels, reads back that
        none of the group is closed, then closes ``channel`` and reads back that exactly ``channel`` of the group
        is closed. When ``channel`` already reads back as the group's only closed one, nothing is switched.
        Channels outside the group are left as they are.
        """
        (target,) = self._checked([channel])
        members = None if group is None else self._checked(group, "group channel") | {target}
        with self._switch_lock:
            closed = self.closed_channels()
            in_group = closed if members is None else closed & members
            if in_group == {target}:
                return
            if in_group:
                if members is None:
                    self._open_all()
                else:
                    self._open(frozenset(in_group))
                closed = self.closed_channels()
                still = closed if members is None else closed & members
                if still:
                    raise self._readback_error(
                        f"opened {self.format_channels(in_group)} before closing {self.format_channels([target])}",
                        closed)
            self._close(frozenset([target]))
            closed = self.closed_channels()
            now = closed if members is None else closed & members
            if now != {target}:
                raise self._readback_error(f"selected {self.format_channels([target])}", closed)

    def disconnect_all(self) -> None:
        """Open every relay and read back that none is closed."""
        self.open_all()

    def safe_state(self) -> None:
        """The safe state of a switch: every relay open (read back)."""
        self.disconnect_all()


def switch_safe_state(inst: Any, settings: Any = None) -> str:
    """A registration's safe state of a switch: :meth:`SwitchMatrixBase.disconnect_all` (raises when a relay
    still reads closed)."""
    inst.disconnect_all()
    return "all relays open (read back)"
