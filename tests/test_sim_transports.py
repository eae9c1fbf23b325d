"""The two transports of the simulated bench: in-process EmulatorAdapter and the loopback TCP server."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import pyvisa
from pymeasure.instruments import Instrument
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.server import Endpoint, serve


class Recorder:
    """Emulator: answers ``X?`` with ``ans:X?``, stays silent on anything else, records what it got."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def handle(self, message: str) -> str | None:
        self.received.append(message)
        return f"ans:{message}" if message.endswith("?") else None


class Console(Recorder):
    """A serial-console emulator that declares echo and prompt itself."""

    echo = True
    prompt = "> "


def _timeout_error(excinfo: pytest.ExceptionInfo[VisaIOError]) -> bool:
    return excinfo.value.error_code == StatusCode.error_timeout


# -- in-process adapter ------------------------------------------------------------------------------------

def test_adapter_query_and_silent_command() -> None:
    emu = Recorder()
    adapter = EmulatorAdapter(emu)
    inst = Instrument(adapter, "test", includeSCPI=False)
    inst.write("SET 1")
    assert inst.ask("V?") == "ans:V?"
    assert emu.received == ["SET 1", "V?"]


def test_adapter_read_with_nothing_queued_times_out_like_visa() -> None:
    adapter = EmulatorAdapter(Recorder())
    adapter.write("SET 1")  # no reply
    with pytest.raises(VisaIOError) as excinfo:
        adapter.read()
    assert _timeout_error(excinfo)


def test_adapter_unterminated_data_times_out_and_is_lost() -> None:
    adapter = EmulatorAdapter(Recorder(), read_termination="\r", prompt="> ")
    adapter.write("A?")
    assert adapter.read() == "ans:A?"
    with pytest.raises(VisaIOError) as excinfo:
        adapter.read()  # only the prompt is left: no terminator
    assert _timeout_error(excinfo)
    assert adapter.bytes_in_buffer == 0


def test_adapter_echo_and_prompt_byte_stream() -> None:
    adapter = EmulatorAdapter(Recorder(), read_termination="\r", write_termination="\r",
                              echo=True, prompt="> ")
    adapter.write("ens?")
    adapter.write("ens")
    assert adapter.read_bytes(-1) == b"ens?\rans:ens?\r> ens\r> "
    assert adapter.read_bytes(-1) == b""  # read-until-timeout of an empty buffer ends without error


def test_adapter_takes_echo_and_prompt_from_emulator_unless_overridden() -> None:
    hinted = EmulatorAdapter(Console(), read_termination="\r", write_termination="\r")
    hinted.write("x?")
    assert hinted.read_bytes(-1) == b"x?\rans:x?\r> "
    plain = EmulatorAdapter(Console(), read_termination="\r", write_termination="\r", echo=False, prompt="")
    plain.write("x?")
    assert plain.read_bytes(-1) == b"ans:x?\r"


def test_adapter_read_bytes_counts_and_termchar() -> None:
    adapter = EmulatorAdapter(Recorder())
    adapter.write("AB?")
    assert adapter.read_bytes(3) == b"ans"
    assert adapter.read_bytes(-1, break_on_termchar=True) == b":AB?\n"
    adapter.write("C?")
    with pytest.raises(VisaIOError) as excinfo:
        adapter.read_bytes(100)  # fewer bytes than asked: a VISA read would time out
    assert _timeout_error(excinfo)
    adapter.write("SET")
    with pytest.raises(VisaIOError):
        adapter.read_bytes(-1, break_on_termchar=True)


def test_adapter_frames_messages_across_and_within_raw_writes() -> None:
    emu = Recorder()
    adapter = EmulatorAdapter(emu, write_termination="\r\n")
    adapter.write_bytes(b"A?\r\nB")
    assert emu.received == ["A?"]
    adapter.write_bytes(b"?\r\nC 1\r\n")
    assert emu.received == ["A?", "B?", "C 1"]
    assert adapter.read() == "ans:A?"
    assert adapter.read() == "ans:B?"


def test_adapter_without_write_termination_treats_each_write_as_a_message() -> None:
    emu = Recorder()
    adapter = EmulatorAdapter(emu, write_termination="", read_termination="")
    adapter.write("Q?")
    adapter.write_bytes(b"R?")
    assert emu.received == ["Q?", "R?"]
    assert adapter.read() == "ans:Q?ans:R?"


def test_adapter_binary_bytes_survive() -> None:
    emu = Recorder()
    adapter = EmulatorAdapter(emu)
    adapter.write_bytes(bytes([0x80, 0xFF, 0x00]) + b"\n")
    assert emu.received == ["\x80\xff\x00"]


def test_adapter_flush_and_close() -> None:
    adapter = EmulatorAdapter(Recorder())
    adapter.write("A?")
    adapter.flush_read_buffer()
    with pytest.raises(VisaIOError):
        adapter.read()
    adapter.timeout = 5000
    assert adapter.connection.timeout == 5000
    adapter.close()
    with pytest.raises(VisaIOError) as excinfo:
        adapter.write("A?")
    assert excinfo.value.error_code == StatusCode.error_connection_lost


def test_adapter_holds_lock_while_emulator_runs() -> None:
    lock = threading.Lock()
    seen = []

    class LockChecker:
        def handle(self, message: str) -> str:
            seen.append(lock.locked())
            return "ok"

    adapter = EmulatorAdapter(LockChecker(), lock=lock)
    assert adapter.link.feed(b"x\n")[1] == 1
    assert seen == [True] and not lock.locked()


# -- TCP server --------------------------------------------------------------------------------------------

def _raw_exchange(port: int, payload: bytes, expect: bytes, timeout_s: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(payload)
        data = b""
        while not data.endswith(expect):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


def _sim_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sim-")]


@pytest.mark.tcp
def test_server_pyvisa_socket_clients_in_sequence() -> None:
    emu = Recorder()
    with serve({"smu": (emu, "\n", "\n")}) as srv:
        resource = srv.resource_strings()["smu"]
        assert resource == f"TCPIP::127.0.0.1::{srv.ports['smu']}::SOCKET"
        rm = pyvisa.ResourceManager("@py")
        try:
            for i in range(3):
                inst = rm.open_resource(resource, read_termination="\n", write_termination="\n", timeout=2000)
                inst.write(f"SET {i}")
                assert inst.query(f"V{i}?") == f"ans:V{i}?"
                inst.close()
        finally:
            rm.close()
    assert emu.received == ["SET 0", "V0?", "SET 1", "V1?", "SET 2", "V2?"]


@pytest.mark.tcp
def test_server_serial_endpoint_speaks_asrlsocket_with_echo_and_prompt() -> None:
    with serve({"shutter": (Console(), "\r", "\r")}, serial=["shutter"]) as srv:
        port = srv.ports["shutter"]
        assert srv.resource_strings()["shutter"] == f"ASRLsocket://127.0.0.1:{port}::INSTR"
        assert _raw_exchange(port, b"ens?\r", b"> ") == b"ens?\rans:ens?\r> "
        rm = pyvisa.ResourceManager("@py")
        try:
            inst = rm.open_resource(srv.resource_strings()["shutter"], read_termination="\r",
                                    write_termination="\r", timeout=2000)
            inst.write("a?")
            assert inst.read() == "a?"
            assert inst.read() == "ans:a?"
            assert inst.read_bytes(2) == b"> "
            inst.close()
        finally:
            rm.close()


@pytest.mark.tcp
def test_server_frames_split_and_batched_messages() -> None:
    emu = Recorder()
    with serve({"x": Endpoint(emu, "\n", "\n")}) as srv:
        with socket.create_connection(("127.0.0.1", srv.ports["x"]), timeout=2) as sock:
            sock.sendall(b"A")
            time.sleep(0.05)
            sock.sendall(b"?\nB?\nC 1\n")
            data = b""
            while data.count(b"\n") < 2:
                data += sock.recv(4096)
            # the server executes in its own thread (an instrument's input buffer): the write after the last
            # query may still be queued when the replies are in
            deadline = time.monotonic() + 2.0
            while len(emu.received) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
    assert data == b"ans:A?\nans:B?\n"
    assert emu.received == ["A?", "B?", "C 1"]


@pytest.mark.tcp
def test_server_survives_client_disconnect_mid_message() -> None:
    emu = Recorder()
    with serve({"x": (emu, "\n", "\n")}) as srv:
        port = srv.ports["x"]
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"HALF")  # never terminated, then the client goes away
        assert _raw_exchange(port, b"Q?\n", b"\n") == b"ans:Q?\n"
    assert emu.received == ["Q?"]  # the fragment of the dead connection was not glued to the next client


@pytest.mark.tcp
def test_server_latency_applies_to_queries_only() -> None:
    latency = 0.15
    with serve({"x": (Recorder(), "\n", "\n")}, latency_s=latency) as srv:
        with socket.create_connection(("127.0.0.1", srv.ports["x"]), timeout=5) as sock:
            t0 = time.monotonic()
            sock.sendall(b"S 1\nS 2\nS 3\nS 4\nS 5\nQ?\n")
            data = b""
            while not data.endswith(b"\n"):
                data += sock.recv(4096)
            elapsed = time.monotonic() - t0
    assert data == b"ans:Q?\n"
    assert latency <= elapsed < 4 * latency


@pytest.mark.tcp
def test_server_serialises_emulator_access_across_clients() -> None:
    state = {"active": 0, "overlap": False}

    class Slow:
        def handle(self, message: str) -> str:
            state["active"] += 1
            if state["active"] > 1:
                state["overlap"] = True
            time.sleep(0.002)
            state["active"] -= 1
            return "ok"

    emu = Slow()
    with serve({"a": (emu, "\n", "\n"), "b": (emu, "\n", "\n")}) as srv:
        def client(port: int) -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                for _ in range(40):
                    sock.sendall(b"q?\n")
                    assert sock.recv(16) == b"ok\n"

        threads = [threading.Thread(target=client, args=(p,)) for p in srv.ports.values() for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert not state["overlap"]


@pytest.mark.tcp
def test_server_close_stops_threads_and_frees_ports() -> None:
    srv = serve({"a": (Recorder(), "\n", "\n"), "b": (Recorder(), "\r", "\r")})
    port = srv.ports["a"]
    client = socket.create_connection(("127.0.0.1", port), timeout=2)  # still connected at close
    try:
        assert _raw_exchange(port, b"Q?\n", b"\n") == b"ans:Q?\n"
        srv.close()
        assert _sim_threads() == []
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        client.close()


@pytest.mark.tcp
def test_server_uses_requested_port() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    free = probe.getsockname()[1]
    probe.close()
    with serve({"x": (Recorder(), "\n", "\n")}, ports={"x": free}) as srv:
        assert srv.ports == {"x": free}
        assert _raw_exchange(free, b"Q?\n", b"\n") == b"ans:Q?\n"


def test_server_refuses_non_loopback_hosts_and_unknown_serial_names() -> None:
    with pytest.raises(ValueError, match="loopback"):
        serve({"x": (Recorder(), "\n", "\n")}, host="0.0.0.0")
    with pytest.raises(ValueError, match="serial"):
        serve({"x": (Recorder(), "\n", "\n")}, serial=["nope"])
    assert _sim_threads() == []


def test_real_clock_keeps_schedule_within_a_command_but_not_across_commands():
    import time

    from sim_instruments.clock import RealClock

    clock = RealClock()
    t0 = time.monotonic()
    for _ in range(50):
        clock.sleep(0.002)  # a 50-point sweep inside one command: no drift from oversleeping
    assert time.monotonic() - t0 == pytest.approx(0.1, abs=0.01)
    clock.resync()
    time.sleep(0.003)  # idle between commands (e.g. the client's round trip)
    t1 = time.monotonic()
    clock.sleep(0.004)
    assert time.monotonic() - t1 >= 0.0039  # the idle time was not counted as instrument time
