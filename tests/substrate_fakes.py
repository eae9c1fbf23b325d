"""A small switch matrix for the substrate runner's tests: driver, emulator and registration (``fake_switch``).

The driver implements the switch contract of drivers/switch.py (select with break-before-make and read-back,
closed_channels, open_channels, close_channels, open_all, disconnect_all; SwitchReadbackError), over a made-up
command set: ``*IDN?``, ``CLOSE n[,m]``, ``OPEN n[,m]``, ``OPEN ALL``, ``STATE?`` (closed channels, e.g. ``1,3`` or
an empty line), ``ERR?``. The emulator wires channel n to simulated device n when exactly one channel is closed
(``bench.select_device``), like a 1×N multiplexer in front of one SMU. Every relay change and every command the
tests watch is appended to :data:`LOG` (and to the file ``$LABCTL_FAKE_SWITCH_LOG`` if set, one JSON line each,
for a test that runs labctl in a subprocess).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from pymeasure.instruments import Instrument

from drivers.identity import IdentitySpec
from drivers.registration import ConnectionDefaults, InstrumentRegistration

IDN = "LABCTL-TEST,FAKE-SWITCH,0001,1.0"
CHANNEL_COUNT = 10
#: (source, what, closed channels or detail) of every relay change and watched command, in order
LOG: list[tuple[str, str, Any]] = []
_log_lock = threading.Lock()
#: channels whose relay does not close (a stuck relay): STATE? honestly reports them open
STUCK: set[int] = set()
#: device number wired to each channel (default: channel n → device n, when the bench has that many)
WIRING: dict[int, int] = {}


def log_event(source: str, what: str, detail: Any) -> None:
    with _log_lock:
        LOG.append((source, what, detail))
        path = os.environ.get("LABCTL_FAKE_SWITCH_LOG")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"t": time.time(), "source": source, "what": what, "detail": detail}) + "\n")


class SwitchReadbackError(RuntimeError):
    """The relays do not read back as commanded (the contract's name, drivers/switch.py)."""


class FakeSwitch(Instrument):
    """The test switch: 10 channels, one command per change, a read-back after every change."""

    IDENTITY = IdentitySpec(query="*IDN?", accepts=(r"LABCTL-TEST,FAKE-SWITCH,",), expected=IDN)
    CHANNELS = range(1, CHANNEL_COUNT + 1)

    def __init__(self, adapter: Any, name: str = "fake switch", **kwargs: Any) -> None:
        super().__init__(adapter, name, includeSCPI=False, **kwargs)

    @property
    def id(self) -> str:
        return self.ask("*IDN?").strip()

    def check_errors(self) -> list[tuple[int, str]]:
        code, _, message = self.ask("ERR?").strip().partition(",")
        return [] if int(code) == 0 else [(int(code), message)]

    def closed_channels(self) -> frozenset[int]:
        reply = self.ask("STATE?").strip()
        return frozenset(int(x) for x in reply.split(",") if x)

    def _expect(self, commanded: str, want: set[int] | None = None, none_of: set[int] | None = None) -> None:
        closed = self.closed_channels()
        if want is not None and not want <= closed:
            raise SwitchReadbackError(f"{commanded}: channels {sorted(want - closed)} read back open "
                                      f"(closed: {sorted(closed)})")
        if none_of is not None and closed & none_of:
            raise SwitchReadbackError(f"{commanded}: channels {sorted(closed & none_of)} read back closed")

    def close_channels(self, channels: Iterable[int]) -> None:
        chans = sorted(set(channels))
        self.write("CLOSE " + ",".join(map(str, chans)))
        self._expect(f"close {chans}", want=set(chans))

    def open_channels(self, channels: Iterable[int]) -> None:
        chans = sorted(set(channels))
        self.write("OPEN " + ",".join(map(str, chans)))
        self._expect(f"open {chans}", none_of=set(chans))

    def open_all(self) -> None:
        self.write("OPEN ALL")
        self._expect("open all", none_of=set(self.CHANNELS))

    def select(self, channel: int, group: Iterable[int] | None = None) -> None:
        members = set(self.CHANNELS if group is None else group) | {channel}
        closed = self.closed_channels() & members
        if closed:
            self.open_channels(closed)
        self.close_channels([channel])
        got = self.closed_channels() & members
        if got != {channel}:
            raise SwitchReadbackError(f"select {channel}: channels {sorted(got)} of the group read back closed")

    def disconnect_all(self) -> None:
        self.open_all()
        if self.closed_channels():
            raise SwitchReadbackError("open all: relays still read back closed")

    def safe_state(self) -> None:
        self.disconnect_all()


class FakeSwitchEmulator:
    """What the fake switch answers; with a bench, channel n connects device WIRING.get(n, n) to the SMU."""

    def __init__(self, bench: Any = None) -> None:
        self.bench = bench
        self.closed: set[int] = set()
        self.errors: list[str] = []

    def _changed(self) -> None:
        log_event("switch", "relays", sorted(self.closed))
        devices = len(getattr(self.bench, "devices", ()) or ())
        if self.bench is not None and len(self.closed) == 1 and devices:
            (channel,) = self.closed
            device = WIRING.get(channel, channel)
            if 1 <= device <= devices:
                self.bench.select_device(device)

    def handle(self, command: str) -> str | None:
        head, _, arg = command.strip().partition(" ")
        if head == "*IDN?":
            return IDN
        if head == "STATE?":
            return ",".join(str(c) for c in sorted(self.closed))
        if head == "ERR?":
            return self.errors.pop(0) if self.errors else "0,No error"
        if head in ("CLOSE", "OPEN"):
            if head == "OPEN" and arg == "ALL":
                self.closed.clear()
                log_event("switch", "open all", [])
                self._changed()
                return None
            try:
                chans = {int(x) for x in arg.split(",")}
            except ValueError:
                self.errors.append('-104,"Data type error"')
                return None
            if not chans <= set(range(1, CHANNEL_COUNT + 1)):
                self.errors.append('-222,"Data out of range"')
                return None
            if head == "CLOSE":
                self.closed |= chans - STUCK
            else:
                self.closed -= chans
            self._changed()
            return None
        self.errors.append(f'-113,"Undefined header {head}"')
        return None


def fake_switch_safe_state(inst: FakeSwitch, settings: Any) -> str:
    inst.disconnect_all()
    return "all relays open (read back)"


REGISTRATION = InstrumentRegistration(
    name="fake_switch",
    driver=FakeSwitch,
    model="LABCTL-TEST fake switch",
    capabilities=("switch_matrix",),
    connection=ConnectionDefaults(read_termination="\n", write_termination="\n", timeout_ms=2000),
    safe_state=fake_switch_safe_state,
    emulator=f"{__name__}:FakeSwitchEmulator",
)


def register() -> None:
    """Register ``fake_switch`` in this process (idempotent)."""
    from labctl.plugins import instrument_registrations, register_instrument

    if "fake_switch" not in instrument_registrations():
        register_instrument(REGISTRATION)


def substrate_station(devices: list[dict] | None = None, pixels: int = 4, smus: int = 1,
                      contact: dict | None = None) -> dict:
    """The default station with ``pixels`` pixels on the fake switch (channel n = pixel "n" = device n) and
    ``smus`` source meters (pixels dealt round-robin: smu, smu2, ...)."""
    from tests.helpers import default_station

    data = default_station()
    for role in ("lockin", "monochromator", "filter_wheel"):
        data["instruments"].pop(role)
    data["instruments"]["switch"] = {"driver": "fake_switch", "resource": "sim://switch"}
    roles = ["smu"] + [f"smu{k}" for k in range(2, smus + 1)]
    for role in roles[1:]:
        data["instruments"][role] = {**data["instruments"]["smu"], "resource": f"sim://{role}"}
    device = data["simulation"].pop("device")
    data["simulation"]["devices"] = devices or [device for _ in range(pixels)]
    data["layouts"] = {"test4": {
        "switch": "switch", "size_mm": [25.0, 25.0],
        "contact_check": contact or {},
        "pixels": [{"name": str(n), "area_cm2": 0.049, "channel": n, "smu": roles[(n - 1) % len(roles)],
                    "x_mm": 5.0 + 5.0 * n, "y_mm": 12.5} for n in range(1, pixels + 1)]}}
    return data
