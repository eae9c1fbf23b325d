"""The strict SCPI layer shared by the emulators: syntax liberties, command tree, parameters, error queue."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_instruments.scpi import (
    COMMON_COMMANDS,
    SYSTEM_ERROR_COMMANDS,
    Command,
    ErrorQueue,
    Params,
    ScpiError,
    ScpiInstrument,
    choice,
    compile_pattern,
    flag,
    nr3,
    number,
    split_params,
    split_units,
)


def _record(name: str):
    def handler(inst: Toy, p: Params) -> str:
        inst.calls.append((name, list(p.suffixes), list(p.tokens)))
        return name

    return handler


class Toy(ScpiInstrument):
    """A small instrument whose handlers record which pattern they were reached through."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[int], list[str]]] = []
        self.reset()

    def identity(self) -> str:
        return "ACME,TOY,1,0.1"

    def reset(self) -> None:
        self.level_V, self.mode, self.enabled, self.start_V, self.stop_V = 0.0, "FIX", False, 0.0, 0.0

    COMMANDS = (
        *COMMON_COMMANDS,
        *SYSTEM_ERROR_COMMANDS,
        Command("[:SENSe[1]]:CURRent[:DC]:NPLCycles", write=_record("nplc"), query=_record("nplc?")),
        Command(":CALCulate3:FORMat", write=_record("calc3")),
        Command(":TEST:USER#:VALue", write=_record("user"), wargs=(0, 3)),
        Command(":SYSTem:BEEPer[:IMMediate]", write=_record("beep"), wargs=(2, 2)),
        Command(":TEXT", write=lambda s, p: s.calls.append(("text", [], [p.string(0)]))),
        number(":SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", "level_V", -10.0, 10.0, 1.5),
        number(":SOURce[1]:VOLTage:STARt", "start_V", -10.0, 10.0, 0.0),
        number(":SOURce[1]:VOLTage:STOP", "stop_V", -10.0, 10.0, 0.0),
        choice(":SOURce[1]:VOLTage:MODE", "mode", ("FIXed", "SWEep", "LIST")),
        flag(":OUTPut[1][:STATe]", "enabled"),
    )


# hand-written spelling tables, independent of compile_pattern: (short, long, optional, suffix choices)
SPELLINGS = {
    "nplc": [("SENS", "SENSE", True, ["", "1"]), ("CURR", "CURRENT", False, [""]), ("DC", "DC", True, [""]),
             ("NPLC", "NPLCYCLES", False, [""])],
    "calc3": [("CALC", "CALCULATE", False, ["3"]), ("FORM", "FORMAT", False, [""])],
    "beep": [("SYST", "SYSTEM", False, [""]), ("BEEP", "BEEPER", False, [""]),
             ("IMM", "IMMEDIATE", True, [""])],
}
ARGS = {"nplc": " 1", "calc3": " MEAN", "beep": " 1000, 0.1"}


@st.composite
def spelled(draw: st.DrawFn, name: str) -> str:
    parts = []
    for short, long, optional, suffixes in SPELLINGS[name]:
        if optional and draw(st.booleans()):
            continue
        word = draw(st.sampled_from([short, long])) + draw(st.sampled_from(suffixes))
        parts.append("".join(c.lower() if draw(st.booleans()) else c for c in word))
    return draw(st.sampled_from(["", ":"])) + ":".join(parts)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(SPELLINGS)).flatmap(lambda n: st.tuples(st.just(n), spelled(n))))
def test_any_spelling_reaches_the_same_handler(case: tuple[str, str]) -> None:
    name, header = case
    toy = Toy()
    assert toy.handle(header + ARGS[name]) is None
    assert toy.handle(":SYST:ERR?") == '0,"No error"'
    assert toy.calls == [(name, [], [a.strip() for a in ARGS[name].split(",")])]


def test_intermediate_spellings_and_wrong_suffixes_are_undefined() -> None:
    toy = Toy()
    for bad in (":SENSE:CURRE:NPLC 1", ":SEN:CURR:NPLC 1", ":SENS2:CURR:NPLC 1", ":CALC:FORM MEAN",
                ":CALC2:FORM MEAN", ":CURR:NPLC1 1"):
        assert toy.handle(bad) is None
        assert toy.handle(":SYST:ERR?") == '-113,"Undefined header"', bad
    assert toy.calls == []


def test_compiled_pattern_short_and_long_forms() -> None:
    nodes = compile_pattern("[:SENSe[1]]:CURRent[:DC]:NPLCycles")
    assert [(n.short, n.long, n.optional, n.suffix) for n in nodes] == [
        ("SENS", "SENSE", True, "[1]"), ("CURR", "CURRENT", False, ""), ("DC", "DC", True, ""),
        ("NPLC", "NPLCYCLES", False, ""),
    ]
    with pytest.raises(ValueError):
        compile_pattern("SENSe:CURRent")  # the first node needs its colon


def test_hash_suffix_is_captured_and_defaults_to_one() -> None:
    toy = Toy()
    toy.handle(":TEST:USER7:VAL;:TEST:USER:VAL")
    assert [c[1] for c in toy.calls] == [[7], [1]]


def test_leading_colon_common_forms_and_trailing_semicolon() -> None:
    toy = Toy()
    assert toy.handle("SOUR:VOLT 2;:*CLS;*OPC;") is None
    assert toy.handle(":*IDN?") == "ACME,TOY,1,0.1"
    assert toy.level_V == 2.0
    assert toy.handle("*ESR?") == "1"  # *OPC completed at once


def test_several_queries_answer_on_one_line() -> None:
    toy = Toy()
    assert toy.handle(":SOUR:VOLT 1.25;:SOUR:VOLT?;*IDN?;:OUTP?") == "+1.250000E+00;ACME,TOY,1,0.1;0"


def test_relative_path_after_semicolon_and_root_fallback() -> None:
    toy = Toy()
    assert toy.handle(":SOUR:VOLT:STAR -1;STOP 2;OUTP ON;*IDN?") == "ACME,TOY,1,0.1"
    assert (toy.start_V, toy.stop_V, toy.enabled) == (-1.0, 2.0, True)
    toy.handle(":SOUR:VOLT:STAR 0;*RST;STOP 3")  # a common command keeps the path
    assert toy.stop_V == 3.0


def test_quotes_protect_separators_and_unquoted_strings_are_rejected() -> None:
    assert split_units(":TEXT 'a;b';*IDN?;") == [":TEXT 'a;b'", "*IDN?"]
    assert split_params(' "x, y" ,  2 ') == ['"x, y"', "2"]
    toy = Toy()
    toy.handle(':TEXT "say ""hi"";now"')
    toy.handle(":TEXT 'it''s'")
    assert [c[2][0] for c in toy.calls] == ['say "hi";now', "it's"]
    assert toy.handle(":TEXT bare") is None
    assert toy.handle(':TEXT "open') is None
    assert toy.handle(":SYST:ERR:ALL?") == (
        '-104,"Data type error",-151,"Invalid string data;unterminated string"')


def test_out_of_range_value_keeps_the_setting_and_queues_minus_222() -> None:
    toy = Toy()
    toy.handle(":SOUR:VOLT 3")
    assert toy.handle(":SOUR:VOLT 10.5") is None
    assert toy.level_V == 3.0
    assert toy.handle("SYST:ERR?") == '-222,"Parameter data out of range"'
    assert toy.handle("*ESR?") == "16"


def test_numeric_keywords_and_formats() -> None:
    toy = Toy()
    for text, expected in (("MAX", 10.0), ("minimum", -10.0), ("DEF", 1.5), ("-2.5e-1", -0.25), ("+.5", 0.5),
                           ("3.", 3.0)):
        toy.handle(f":SOUR:VOLT {text}")
        assert toy.level_V == expected, text
    assert toy.handle(":SOUR:VOLT? MAX") == "+1.000000E+01"
    assert toy.handle(":SOUR:VOLT 1.2.3;:SOUR:VOLT abc;:SOUR:VOLT '1'") is None
    assert toy.handle(":SYST:ERR:CODE:ALL?") == "-120"  # a command error drops the rest of the message
    for text in ("1.2.3", "abc", "'1'"):
        toy.handle(f":SOUR:VOLT {text}")
    assert toy.handle(":SYST:ERR:CODE:ALL?") == "-120,-141,-104"
    assert toy.level_V == 3.0


def test_booleans_and_keywords() -> None:
    toy = Toy()
    cases = (("ON", True), ("off", False), ("1", True), ("0", False), ("0.4", False), ("2", True))
    for text, expected in cases:
        toy.handle(f":OUTP {text}")
        assert toy.enabled is expected, text
    toy.handle(":SOUR:VOLT:MODE sweep")
    assert toy.handle(":SOUR:VOLT:MODE?") == "SWE"
    toy.handle(":SOUR:VOLT:MODE SWEE")
    assert toy.handle(":SOUR:VOLT:MODE?;:SYST:ERR?") == 'SWE;-141,"Invalid character data"'


def test_parameter_count_errors() -> None:
    toy = Toy()
    assert toy.handle(":SOUR:VOLT") is None
    assert toy.handle(":SOUR:VOLT 1, 2") is None
    assert toy.handle("*IDN? 1") is None
    assert toy.handle(":SYST:ERR:ALL?") == '-109,"Missing parameter",-108,"Parameter not allowed",' \
                                           '-108,"Parameter not allowed"'


def test_unknown_header_stops_the_message_but_execution_errors_do_not() -> None:
    toy = Toy()
    assert toy.handle(":SOUR:VOLT 1;:FOO 2;:SOUR:VOLT 2") is None
    assert toy.level_V == 1.0
    assert toy.handle(":SOUR:VOLT 11;:SOUR:VOLT 4;:SOUR:VOLT?") == "+4.000000E+00"
    assert toy.handle(":SYST:ERR:ALL?") == '-113,"Undefined header",-222,"Parameter data out of range"'
    assert toy.handle(":SYST:ERR?") == '0,"No error"'


def test_failed_query_gives_no_reply_and_query_form_must_exist() -> None:
    toy = Toy()
    assert toy.handle(":CALC3:FORM?") is None  # write-only command
    assert toy.handle(":OUTP?;:FOO?") == "0"
    assert toy.handle(":SYST:ERR:COUN?") == "2"


def test_error_queue_is_fifo_and_overflows_into_minus_350() -> None:
    q = ErrorQueue(size=4)
    for code in (-113, -222, -109, -104, -102, -101):
        q.push(code)
    assert [c for c, _ in q.pop_all()] == [-113, -222, -109, -350]
    assert q.pop() == (0, "No error")
    toy = Toy()
    for _ in range(12):
        toy.handle(":FOO")
    assert toy.handle(":SYST:ERR:COUN?") == "10"
    codes = toy.handle(":SYST:ERR:CODE:ALL?")
    assert codes is not None and codes.split(",") == ["-113"] * 9 + ["-350"]


def test_clear_commands_and_status_byte() -> None:
    toy = Toy()
    toy.handle(":FOO")
    assert toy.handle("*STB?") == "4"  # error available
    toy.handle("*ESE 32;*SRE 32")
    assert int(toy.handle("*STB?") or 0) == 4 | 32 | 64
    toy.handle("*CLS")
    assert toy.handle("*STB?;:SYST:ERR:COUN?;*ESR?") == "0;0;0"
    toy.handle(":SOUR:VOLT 99;:SYST:CLE")
    assert toy.handle(":SYST:ERR?;*ESR?") == '0,"No error";16'
    toy.handle(":SOUR:VOLT 1;*RST")
    assert toy.level_V == 0.0
    assert toy.handle("*OPC?;*ESE?;*SRE?") == "1;32;32"


def test_esr_bits_follow_the_error_class() -> None:
    toy = Toy()
    for message, bit in ((":FOO", 32), (":SOUR:VOLT 99", 16), ("*IDN", 32)):
        toy.handle(message)
        assert toy.handle("*ESR?") == str(bit), message
        toy.handle("*CLS")
    toy.push_error(-410)
    toy.push_error(803)
    assert toy.handle("*ESR?") == str(4 | 8)


def test_nr3_formats_like_a_keithley() -> None:
    assert nr3(1.000236) == "+1.000236E+00"
    assert nr3(-1.05e-4) == "-1.050000E-04"
    assert nr3(9.9e37) == "+9.900000E+37"
    assert nr3(1.5, plus=False) == "1.500000E+00"


def test_scpi_error_carries_detail_text() -> None:
    toy = Toy()
    toy.push_error(-221, "power envelope")
    assert toy.handle(":SYST:ERR?") == '-221,"Settings conflict;power envelope"'
    with pytest.raises(ScpiError):
        Params(["x"]).number(0, 0, 1)


GARBAGE = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=40)


@settings(max_examples=300, deadline=None)
@given(GARBAGE)
def test_garbage_never_raises_and_never_answers_without_a_question_mark(text: str) -> None:
    toy = Toy()
    reply = toy.handle(text.replace("?", ""))
    assert reply is None
    count = toy.handle(":SYST:ERR:COUN?")
    assert count is not None and 0 <= int(count) <= 10


@settings(max_examples=300, deadline=None)
@given(GARBAGE)
def test_garbage_after_an_unknown_header_only_reaches_the_error_queue(text: str) -> None:
    toy = Toy()
    assert toy.handle("XQZZY" + text) is None
    err = toy.handle(":SYST:ERR?")
    assert err is not None and re.fullmatch(r'-1\d\d,"[^"]*"', err)
    assert toy.calls == [] and toy.level_V == 0.0
