"""Strict SCPI message handling shared by the SCPI emulators (instruments.md §0.1, §0.2).

* :func:`split_units` / :func:`split_params`: IEEE 488.2 message syntax (``;`` units, ``,`` parameters,
  strings in single or double quotes with doubled-quote escapes).
* :class:`Command`: one header written in manual notation (``[:SENSe[1]]:CURRent[:DC]:NPLCycles``) with its
  write and query handlers. Keywords match case-insensitively in exactly their short or long form; ``[...]``
  nodes are optional; ``SENSe[1]`` takes an optional suffix that must be 1, ``CALCulate3`` needs suffix 3,
  ``USER#`` captures any suffix into :attr:`Params.suffixes`.
* :class:`Params`: typed access to a unit's parameters (numbers with MIN/MAX/DEF, booleans ON/OFF/1/0,
  keywords in short/long form, quoted strings); a bad parameter raises :class:`ScpiError`.
* :class:`ErrorQueue`: FIFO of ``(code, text)``; when full the last entry becomes -350 "Queue overflow".
* :class:`ScpiInstrument`: ``handle(message) -> reply | None`` plus the IEEE 488.2 common commands.

Parsing liberties (all seen in real drivers, §0.1): optional leading colon, ``:*RST``, trailing ``;``,
whitespace around parameters, several queries answered ``;``-joined on one line, and a header without a
leading colon after ``;`` is tried relative to the previous header's path first
(``:SOUR:VOLT:STAR 0;STOP 1``), then from the root.

Error policy (§0.2): a failing unit changes nothing and queues its error; a failing query gives no reply. A
command error (-1xx) also discards the rest of the message (IEEE 488.2 parser resynchronises at the next
message); execution errors (-2xx, device-specific codes) do not.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

ERROR_TEXTS: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -101: "Invalid character",
    -102: "Syntax error",
    -103: "Invalid separator",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -112: "Program mnemonic too long",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -120: "Numeric data error",
    -141: "Invalid character data",
    -151: "Invalid string data",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Parameter data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -350: "Queue overflow",
    -410: "Query INTERRUPTED",
    -420: "Query UNTERMINATED",
}

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_MNEMONIC = re.compile(r"^([A-Z_]+)(\d*)$")
_HEADER_CHARS = re.compile(r"^[A-Za-z0-9_:*?]*$")
_PATTERN_NODE = re.compile(
    r"(\[:(?P<opt>[A-Za-z*]+)(?P<osuf>\[\d+\]|\d+|#)?\])|(:(?P<req>[A-Za-z*]+)(?P<suf>\[\d+\]|\d+|#)?)"
)
MAX_MNEMONIC = 12
Token = tuple[str, "int | None"]


class ScpiError(Exception):
    """A unit failed: ``code`` goes to the error queue, with an optional detail appended to the text."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def is_command_error(code: int) -> bool:
    return -199 <= code <= -100


# -------------------------------------------------------------------------------------- message syntax
def _split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` outside '...' and "..." (a doubled quote inside a string is an escape)."""
    parts, current, quote = [], [], ""
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quote:
        raise ScpiError(-151, "unterminated string")
    parts.append("".join(current))
    return parts


def split_units(message: str) -> list[str]:
    """Program message units of one message; empty units (e.g. after a trailing ``;``) are dropped."""
    return [u for u in _split_outside_quotes(message, ";") if u.strip()]


def split_params(text: str) -> list[str]:
    """Parameter tokens (whitespace stripped); an empty token between commas is a syntax error."""
    if not text.strip():
        return []
    tokens = [t.strip() for t in _split_outside_quotes(text, ",")]
    if any(not t for t in tokens):
        raise ScpiError(-102, "empty parameter")
    return tokens


def split_header(unit: str) -> tuple[str, str]:
    """(header, parameter text). The header ends at whitespace or right after a ``?``."""
    text = unit.strip()
    end = len(text)
    for i, ch in enumerate(text):
        if ch.isspace():
            end = i
            break
        if ch == "?":
            end = i + 1
            break
    header, rest = text[:end], text[end:]
    if not _HEADER_CHARS.match(header):
        raise ScpiError(-101)
    return header, rest


def parse_header(header: str) -> tuple[bool, bool, tuple[tuple[str, int | None], ...]]:
    """(from_root, is_query, tokens), tokens ``(MNEMONIC, suffix or None)``; a common command is one token."""
    is_query = header.endswith("?")
    path = header[:-1] if is_query else header
    from_root = path.startswith(":")
    if from_root:
        path = path[1:]
    if not path or "?" in path:
        raise ScpiError(-102)
    if path.startswith("*"):
        name = path[1:].upper()
        if not name.isalpha() or ":" in path:
            raise ScpiError(-102)
        return from_root, is_query, (("*" + name, None),)
    tokens = []
    for part in path.split(":"):
        m = _MNEMONIC.match(part.upper())
        if not m:
            raise ScpiError(-102)
        if len(m.group(1)) > MAX_MNEMONIC:
            raise ScpiError(-112)
        tokens.append((m.group(1), int(m.group(2)) if m.group(2) else None))
    return from_root, is_query, tuple(tokens)


# ------------------------------------------------------------------------------------- header patterns
@dataclass(frozen=True)
class Node:
    """One keyword of a header pattern: short/long forms, optional node, suffix rule."""

    short: str
    long: str
    optional: bool
    suffix: str  # "" none, "[n]" optional n, "n" required n, "#" any (captured)

    def accepts(self, token: tuple[str, int | None]) -> bool:
        word, num = token
        if word not in (self.short, self.long):
            return False
        if self.suffix == "":
            return num is None
        if self.suffix == "#":
            return num is None or num >= 1
        if self.suffix.startswith("["):
            return num is None or num == int(self.suffix[1:-1])
        return num == int(self.suffix)


def compile_pattern(pattern: str) -> tuple[Node, ...]:
    """Nodes of a header written in manual notation, e.g. ``[:SENSe[1]]:CURRent[:DC]:PROTection[:LEVel]``."""
    if pattern.startswith("*"):
        return (Node(pattern.upper(), pattern.upper(), False, ""),)
    nodes, pos = [], 0
    for m in _PATTERN_NODE.finditer(pattern):
        if m.start() != pos:
            raise ValueError(f"bad SCPI pattern {pattern!r} at {pos}")
        pos = m.end()
        word = m.group("opt") or m.group("req")
        short = re.match(r"[A-Z*]+", word)
        if short is None:
            raise ValueError(f"keyword without a short form in {pattern!r}")
        suffix = m.group("osuf") or m.group("suf") or ""
        nodes.append(Node(short.group(0), word.upper(), bool(m.group("opt")), suffix))
    if pos != len(pattern) or not nodes:
        raise ValueError(f"bad SCPI pattern {pattern!r}")
    return tuple(nodes)


def match_nodes(nodes: Sequence[Node], tokens: Sequence[tuple[str, int | None]]) -> list[int] | None:
    """Suffixes captured by ``#`` nodes if ``tokens`` spell ``nodes``, else None (backtracks over options)."""

    def rec(ni: int, ti: int) -> list[int] | None:
        if ni == len(nodes):
            return [] if ti == len(tokens) else None
        node = nodes[ni]
        if ti < len(tokens) and node.accepts(tokens[ti]):
            rest = rec(ni + 1, ti + 1)
            if rest is not None:
                return ([tokens[ti][1] or 1] if node.suffix == "#" else []) + rest
        if node.optional:
            rest = rec(ni + 1, ti)
            if rest is not None:
                return ([1] if node.suffix == "#" else []) + rest
        return None

    return rec(0, 0)


Handler = Callable[[Any, "Params"], Any]


@dataclass(frozen=True)
class Command:
    """A header pattern with its handlers: ``write(inst, params)`` and ``query(inst, params) -> str``.

    wargs / qargs: (min, max) number of parameters accepted by the write / query form (-109 / -108 otherwise).
    """

    pattern: str
    write: Handler | None = None
    query: Handler | None = None
    wargs: tuple[int, int] = (1, 1)
    qargs: tuple[int, int] = (0, 0)


# ------------------------------------------------------------------------------------------ parameters
def mnemonic_matches(token: str, mnemonic: str) -> bool:
    """True if ``token`` is the short or long form of ``mnemonic`` (e.g. ``SWE``/``sweep`` for ``SWEep``)."""
    short = re.match(r"[A-Z0-9]+", mnemonic)
    up = token.upper()
    return up == mnemonic.upper() or (short is not None and up == short.group(0))


class Params:
    """Parameters of one unit. ``suffixes`` holds the numbers captured by ``#`` header nodes."""

    def __init__(self, tokens: Sequence[str], suffixes: Sequence[int] = ()) -> None:
        self.tokens = list(tokens)
        self.suffixes = list(suffixes)

    def __len__(self) -> int:
        return len(self.tokens)

    def raw(self, i: int) -> str:
        return self.tokens[i]

    def is_word(self, i: int, *mnemonics: str) -> bool:
        tok = self.tokens[i]
        return tok[:1] not in "'\"" and any(mnemonic_matches(tok, m) for m in mnemonics)

    def number(self, i: int, lo: float, hi: float, default: float | None = None) -> float:
        """A numeric value in [lo, hi]: MINimum -> lo, MAXimum -> hi, DEFault -> default; else -222."""
        tok = self.tokens[i]
        if self.is_word(i, "MINimum"):
            return lo
        if self.is_word(i, "MAXimum"):
            return hi
        if self.is_word(i, "DEFault"):
            if default is None:
                raise ScpiError(-224)
            return default
        value = parse_number(tok)
        if not lo <= value <= hi:
            raise ScpiError(-222)
        return value

    def integer(self, i: int, lo: int, hi: int, default: int | None = None) -> int:
        """An integer (NRf is rounded, as SCPI does) in [lo, hi]."""
        return int(round(self.number(i, lo, hi, default)))

    def boolean(self, i: int) -> bool:
        tok = self.tokens[i]
        if self.is_word(i, "ON"):
            return True
        if self.is_word(i, "OFF"):
            return False
        return round(parse_number(tok)) != 0

    def keyword(self, i: int, options: Sequence[str]) -> str:
        """The matching option's short form in upper case (``SWEep`` -> ``SWE``); else -141."""
        tok = self.tokens[i]
        if tok[:1] in "'\"":
            raise ScpiError(-104)
        for opt in options:
            if mnemonic_matches(tok, opt):
                short = re.match(r"[A-Z0-9]+", opt)
                return short.group(0) if short else opt.upper()
        raise ScpiError(-141)

    def string(self, i: int) -> str:
        """A quoted string's content; unquoted data is a data type error (-104)."""
        tok = self.tokens[i]
        if len(tok) < 2 or tok[0] not in "'\"" or tok[-1] != tok[0]:
            raise ScpiError(-104)
        q = tok[0]
        return tok[1:-1].replace(q + q, q)


def parse_number(token: str) -> float:
    """A decimal numeric program data element (no units, no NaN/INF words)."""
    if token[:1] in "'\"":
        raise ScpiError(-104)
    if not _NUMBER.match(token):
        raise ScpiError(-120 if token[:1] in "+-.0123456789" else -141)
    return float(token)


def nr3(value: float, plus: bool = True) -> str:
    """Keithley-style exponent format: ``+1.000236E+00`` (``plus=False``: ``1.000236E+00``)."""
    return f"{value:+.6E}" if plus else f"{value:.6E}"


# --------------------------------------------------------------------------------- error queue, status
class ErrorQueue:
    """FIFO of (code, text); on overflow the newest entry is replaced by -350 "Queue overflow"."""

    def __init__(self, size: int = 10, texts: Mapping[int, str] | None = None) -> None:
        self.size = size
        self.texts = dict(ERROR_TEXTS) | dict(texts or {})
        self._queue: deque[tuple[int, str]] = deque()

    def text(self, code: int, detail: str = "") -> str:
        base = self.texts.get(code, "Error")
        return f"{base};{detail}" if detail else base

    def push(self, code: int, detail: str = "") -> None:
        if len(self._queue) >= self.size:
            if self._queue[-1][0] != -350:
                self._queue[-1] = (-350, self.text(-350))
            return
        self._queue.append((code, self.text(code, detail)))

    def pop(self) -> tuple[int, str]:
        return self._queue.popleft() if self._queue else (0, self.text(0))

    def pop_all(self) -> list[tuple[int, str]]:
        items = list(self._queue) or [(0, self.text(0))]
        self._queue.clear()
        return items

    def clear(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)


def format_error(code: int, text: str) -> str:
    return f'{code},"{text}"'


def esr_bit_for(code: int) -> int:
    """*ESR bit of an error class: -1xx CME 32, -2xx EXE 16, -3xx and device codes DDE 8, -4xx QYE 4."""
    if -199 <= code <= -100:
        return 32
    if -299 <= code <= -200:
        return 16
    if -499 <= code <= -400:
        return 4
    return 8


@dataclass
class EventRegister:
    """An SCPI status structure: condition, latched event, enable mask."""

    condition: int = 0
    event: int = 0
    enable: int = 0

    def raise_bits(self, bits: int) -> None:
        self.event |= bits

    def read_event(self) -> int:
        value, self.event = self.event, 0
        return value

    @property
    def summary(self) -> bool:
        return bool(self.event & self.enable)


def status_register_commands(node: str, attr: str) -> tuple[Command, ...]:
    """``:STATus:<node>[:EVENt]?``, ``:ENABle``, ``:ENABle?``, ``:CONDition?`` for ``getattr(inst, attr)``."""
    reg: Callable[[Any], EventRegister] = lambda inst: getattr(inst, attr)  # noqa: E731
    return (
        Command(f":STATus:{node}[:EVENt]", query=lambda s, p: str(reg(s).read_event())),
        Command(
            f":STATus:{node}:ENABle",
            write=lambda s, p: setattr(reg(s), "enable", p.integer(0, 0, 65535)),
            query=lambda s, p: str(reg(s).enable),
        ),
        Command(f":STATus:{node}:CONDition", query=lambda s, p: str(reg(s).condition)),
    )


# ----------------------------------------------------------------------------------- setting factories
Getter = Callable[[Any], Any]


def _holder(inst: Any, obj: Getter | None) -> Any:
    return obj(inst) if obj is not None else inst


def flag(pattern: str, attr: str, after: str | None = None, obj: Getter | None = None) -> Command:
    """Boolean setting ``attr`` of the instrument (or of ``obj(inst)``); queries answer ``1``/``0``.

    ``after`` names an instrument method called after a successful write.
    """

    def write(inst: Any, p: Params) -> None:
        setattr(_holder(inst, obj), attr, p.boolean(0))
        if after:
            getattr(inst, after)()

    return Command(pattern, write=write, query=lambda s, p: "1" if getattr(_holder(s, obj), attr) else "0")


def choice(
    pattern: str, attr: str, options: Sequence[str], after: str | None = None, obj: Getter | None = None
) -> Command:
    """Keyword setting stored as the option's short form in upper case (``SWEep`` -> ``SWE``)."""

    def write(inst: Any, p: Params) -> None:
        setattr(_holder(inst, obj), attr, p.keyword(0, options))
        if after:
            getattr(inst, after)()

    return Command(pattern, write=write, query=lambda s, p: getattr(_holder(s, obj), attr))


def number(
    pattern: str,
    attr: str,
    lo: float,
    hi: float,
    default: float,
    fmt: Callable[[float], str] = nr3,
    integer: bool = False,
    obj: Getter | None = None,
) -> Command:
    """Numeric setting in [lo, hi] (MIN/MAX/DEF accepted; out of range -> -222 and unchanged).

    The query also accepts MIN/MAX/DEF and answers that limit instead of the setting.
    """

    def write(inst: Any, p: Params) -> None:
        value = p.integer(0, int(lo), int(hi), int(default)) if integer else p.number(0, lo, hi, default)
        setattr(_holder(inst, obj), attr, value)

    def query(inst: Any, p: Params) -> str:
        value = p.number(0, lo, hi, default) if len(p) else getattr(_holder(inst, obj), attr)
        return str(int(value)) if integer else fmt(value)

    return Command(pattern, write=write, query=query, qargs=(0, 1))


def noop(pattern: str, nargs: tuple[int, int] = (0, 0)) -> Command:
    """A command accepted and ignored (display, beeper, remote/local...)."""
    return Command(pattern, write=lambda s, p: None, wargs=nargs)


# ------------------------------------------------------------------------------------------ instrument
class ScpiInstrument:
    """Base of the SCPI emulators: message handling, error queue and IEEE 488.2 status/common commands.

    Subclasses set ``COMMANDS`` (include :data:`COMMON_COMMANDS` and usually :data:`SYSTEM_ERROR_COMMANDS`)
    and override :meth:`identity`, :meth:`reset`, :meth:`clear_status`, :meth:`summary_bits`, :meth:`trigger`.
    """

    COMMANDS: ClassVar[Sequence[Command]] = ()
    ERROR_TEXTS: ClassVar[Mapping[int, str]] = {}
    ERROR_QUEUE_SIZE: ClassVar[int] = 10

    def __init__(self) -> None:
        self.errors = ErrorQueue(self.ERROR_QUEUE_SIZE, self.ERROR_TEXTS)
        self.esr = 0  # standard event status register
        self.ese = 0
        self.sre = 0
        self._lock = threading.RLock()
        self._lookup_cache: dict[tuple[Any, ...], tuple[Command, list[int]] | None] = {}

    # -- hooks ---------------------------------------------------------------------------------------------
    def identity(self) -> str:
        raise NotImplementedError

    def reset(self) -> None:
        """``*RST``: settings to their defaults."""

    def clear_status(self) -> None:
        """``*CLS``: error queue and event registers (subclasses clear their own registers too)."""
        self.errors.clear()
        self.esr = 0

    def summary_bits(self) -> int:
        """Status-byte bits 0, 1, 3, 7 (instrument-specific summaries)."""
        return 0

    def trigger(self) -> None:
        """``*TRG``."""

    # -- machinery -----------------------------------------------------------------------------------------
    @classmethod
    def _compiled(cls) -> list[tuple[Command, tuple[Node, ...]]]:
        if "_COMPILED" not in cls.__dict__:
            cls._COMPILED = [(c, compile_pattern(c.pattern)) for c in cls.COMMANDS]  # type: ignore[attr-defined]
        return cls.__dict__["_COMPILED"]

    def push_error(self, code: int, detail: str = "") -> None:
        self.errors.push(code, detail)
        self.esr |= esr_bit_for(code)

    def status_byte(self) -> int:
        """STB: summary bits, EAV (4) if errors are queued, ESB (32), MSS (64)."""
        stb = self.summary_bits() & ~(4 | 32 | 64)
        if len(self.errors):
            stb |= 4
        if self.esr & self.ese:
            stb |= 32
        if stb & self.sre & ~64:
            stb |= 64
        return stb

    def _lookup(self, tokens: tuple[Token, ...], is_query: bool) -> tuple[Command, list[int]] | None:
        key = (tokens, is_query)
        if key in self._lookup_cache:
            return self._lookup_cache[key]
        found = None
        for cmd, nodes in self._compiled():
            if (cmd.query if is_query else cmd.write) is None:
                continue
            caps = match_nodes(nodes, tokens)
            if caps is not None:
                found = (cmd, caps)
                break
        if found is not None and len(self._lookup_cache) < 4096:
            self._lookup_cache[key] = found
        return found

    def _execute(self, unit: str, prefix: tuple) -> tuple[str | None, tuple]:
        header, rest = split_header(unit)
        from_root, is_query, tokens = parse_header(header)
        params = split_params(rest)
        common = tokens[0][0].startswith("*")
        candidates = [tokens] if (from_root or common or not prefix) else [prefix + tokens, tokens]
        for toks in candidates:
            found = self._lookup(toks, is_query)
            if found is not None:
                break
        else:
            raise ScpiError(-113)
        cmd, caps = found
        lo, hi = cmd.qargs if is_query else cmd.wargs
        if len(params) < lo:
            raise ScpiError(-109)
        if len(params) > hi:
            raise ScpiError(-108)
        handler = cmd.query if is_query else cmd.write
        assert handler is not None
        result = handler(self, Params(params, caps))
        return (result if is_query else None), (prefix if common else toks[:-1])

    def handle(self, message: str) -> str | None:
        """One message in (terminator stripped); the reply (answers ``;``-joined) or None."""
        with self._lock:
            try:
                units = split_units(message)
            except ScpiError as exc:
                self.push_error(exc.code, exc.detail)
                return None
            replies: list[str] = []
            prefix: tuple = ()
            for unit in units:
                try:
                    reply, prefix = self._execute(unit, prefix)
                except ScpiError as exc:
                    self.push_error(exc.code, exc.detail)
                    if is_command_error(exc.code):
                        break
                    continue
                if reply is not None:
                    replies.append(reply)
            return ";".join(replies) if replies else None


# ------------------------------------------------------------------------------- common command tables
def _set_opc(inst: ScpiInstrument, p: Params) -> None:
    inst.esr |= 1  # every operation is complete when its message has been handled


def _read_esr(inst: ScpiInstrument) -> str:
    value, inst.esr = inst.esr, 0
    return str(value)


COMMON_COMMANDS: tuple[Command, ...] = (
    Command("*IDN", query=lambda s, p: s.identity()),
    Command("*RST", write=lambda s, p: s.reset(), wargs=(0, 0)),
    Command("*CLS", write=lambda s, p: s.clear_status(), wargs=(0, 0)),
    Command("*ESR", query=lambda s, p: _read_esr(s)),
    number("*ESE", "ese", 0, 255, 0, integer=True),
    number("*SRE", "sre", 0, 255, 0, integer=True),
    Command("*STB", query=lambda s, p: str(s.status_byte())),
    Command("*OPC", write=_set_opc, query=lambda s, p: "1", wargs=(0, 0)),
    Command("*WAI", write=lambda s, p: None, wargs=(0, 0)),
    Command("*TRG", write=lambda s, p: s.trigger(), wargs=(0, 0)),
    Command("*TST", query=lambda s, p: "0"),
)


def _err_next(inst: ScpiInstrument, p: Params) -> str:
    return format_error(*inst.errors.pop())


SYSTEM_ERROR_COMMANDS: tuple[Command, ...] = (
    Command(":SYSTem:ERRor[:NEXT]", query=_err_next),
    Command(":SYSTem:ERRor:ALL", query=lambda s, p: ",".join(format_error(*e) for e in s.errors.pop_all())),
    Command(":SYSTem:ERRor:COUNt", query=lambda s, p: str(len(s.errors))),
    Command(":SYSTem:ERRor:CODE[:NEXT]", query=lambda s, p: str(s.errors.pop()[0])),
    Command(":SYSTem:ERRor:CODE:ALL", query=lambda s, p: ",".join(str(e[0]) for e in s.errors.pop_all())),
    Command(":SYSTem:CLEar", write=lambda s, p: s.errors.clear(), wargs=(0, 0)),
)
