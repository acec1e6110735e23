"""TCP abuse against the real process: broken length prefixes, slow clients, connection floods."""

from __future__ import annotations

import socket
import struct
import time

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.wait import until


pytestmark = pytest.mark.e2e


def framed(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


def query(name: str = "localhost") -> bytes:
    return dns.message.make_query(name, "A").to_wire()


def closed_within(conn: socket.socket, seconds: float) -> float:
    """Seconds until the server closed `conn` (EOF or reset), failing if it takes over `seconds`."""
    started = time.monotonic()
    conn.settimeout(seconds)
    try:
        data = conn.recv(65535)
    except ConnectionResetError:
        data = b""
    assert data == b"", f"unexpected data {data[:40]!r}"
    return time.monotonic() - started


def still_answers(server) -> None:
    """A new connection and a UDP query are both answered."""
    assert dns.query.tcp(dns.message.make_query("localhost", "A"), server.host, port=server.port, timeout=5).answer
    assert dns.query.udp(dns.message.make_query("localhost", "A"), server.host, port=server.port, timeout=5).answer


@pytest.fixture
def server(nsd, start_sinkdns):
    return start_sinkdns("--upstream", nsd.address)


def with_config(nsd, start_sinkdns, tmp_path, text: str):
    path = tmp_path / "hardening.toml"
    path.write_text(text)
    return start_sinkdns("--config", str(path), "--upstream", nsd.address)


@pytest.mark.parametrize("body", [b"", b"\x12\x34\x01\x00", query()])
def test_length_prefix_65535_then_a_short_body_and_close(server, body):
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        conn.sendall(b"\xff\xff" + body)
        conn.shutdown(socket.SHUT_WR)
        assert closed_within(conn, 5) < 5  # nothing comes back for an incomplete message
    still_answers(server)


def test_length_prefix_0_followed_by_a_query_closes_without_an_answer(server):
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        conn.sendall(b"\x00\x00" + framed(query()))
        closed_within(conn, 5)
    still_answers(server)


def test_prefix_shorter_than_a_header_then_a_query(server):
    """The 5-byte frame is dropped (no header); the stream stays in sync and the next query is answered."""
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        wire = query()
        conn.sendall(b"\x00\x05" + b"\x12\x34\x01\x00\x00" + framed(wire))
        length = struct.unpack("!H", conn.recv(2))[0]
        reply = dns.message.from_wire(conn.recv(length))
        assert reply.id == struct.unpack("!H", wire[:2])[0]


def test_a_connection_that_never_completes_a_message_goes_at_the_first_message_timeout(nsd, start_sinkdns, tmp_path):
    server = with_config(nsd, start_sinkdns, tmp_path, "[server]\ntcp_first_timeout = 0.5\ntcp_idle_timeout = 10\n")
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        conn.sendall(b"\xff\xff" + b"\x00" * 100)
        assert closed_within(conn, 3) < 0.5 + 1.0


def test_slowloris_is_closed_and_a_slow_but_whole_query_is_answered(nsd, start_sinkdns, tmp_path):
    server = with_config(nsd, start_sinkdns, tmp_path, "[server]\ntcp_first_timeout = 1.5\ntcp_idle_timeout = 1.5\n")
    message = framed(query())
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        for part in (message[:1], message[1:2], message[2:10], message[10:]):  # 0.3 s apart: legitimate
            conn.sendall(part)
            time.sleep(0.3)
        length = struct.unpack("!H", conn.recv(2))[0]
        assert dns.message.from_wire(conn.recv(length)).answer
        started = time.monotonic()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):  # one byte every 0.1 s never counts as activity
                conn.sendall(b"\x00")
                time.sleep(0.1)
        assert time.monotonic() - started < 1.5 + 1.0


def test_connections_over_the_caps_are_closed_at_once(nsd, start_sinkdns, tmp_path):
    server = with_config(
        nsd, start_sinkdns, tmp_path, "[server]\ntcp_max_connections = 5\ntcp_max_per_client = 3\n"
    )

    def connect(source: str) -> socket.socket:
        conn = socket.socket()
        conn.bind((source, 0))
        conn.connect((server.host, server.port))
        return conn

    held = [connect("127.0.0.1") for _ in range(3)]
    try:
        with connect("127.0.0.1") as extra:  # a fourth from the same client
            assert closed_within(extra, 2) < 1.0
        held += [connect("127.0.0.2") for _ in range(2)]
        with connect("127.0.0.3") as extra:  # a sixth in all
            assert closed_within(extra, 2) < 1.0
        for conn in held:  # the ones admitted are served
            conn.sendall(framed(query()))
            length = struct.unpack("!H", conn.recv(2))[0]
            assert dns.message.from_wire(conn.recv(length)).rcode() == dns.rcode.NOERROR
        held.pop().close()

        def served_again() -> bool:  # a slot given back is taken again, once the server has seen the close
            with connect("127.0.0.3") as again:
                again.settimeout(5)
                try:
                    again.sendall(framed(query()))
                    return len(again.recv(2)) == 2
                except (BrokenPipeError, ConnectionResetError):
                    return False

        until(served_again, 10, "a freed TCP slot to be taken again")
    finally:
        for conn in held:
            conn.close()
    assert dns.query.udp(dns.message.make_query("localhost", "A"), server.host, port=server.port, timeout=5).answer
