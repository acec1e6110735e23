"""The real sinkdns process forwarding to a real nsd upstream, queried with dnspython and dig."""

from __future__ import annotations

import socket
import struct
import subprocess
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.system import require

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(nsd, start_sinkdns):
    return start_sinkdns("--upstream", nsd.address)


def ask(server, name: str, rdtype: str = "A", tcp: bool = False, **kwargs) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kwargs)
    send = dns.query.tcp if tcp else dns.query.udp
    response = send(query, server.host, port=server.port, timeout=5)
    assert response.id == query.id
    return response


@pytest.mark.parametrize(
    "rdtype, expected",
    [
        ("A", "192.0.2.10"),
        ("AAAA", "2001:db8::10"),
        ("MX", "10 mail.sinkdns.test."),
        ("TXT", '"hello from nsd"'),
    ],
)
def test_forwards_each_type(server, rdtype, expected):
    response = ask(server, "www.sinkdns.test", rdtype)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.RA
    assert [rd.to_text() for rd in response.answer[0]] == [expected]


def test_nxdomain_carries_soa(server):
    response = ask(server, "missing.sinkdns.test")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_nodata(server):
    response = ask(server, "www.sinkdns.test", "SRV")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_question_case_and_id_come_back_as_sent(server):
    response = ask(server, "WwW.SinkDNS.Test", "A")
    assert response.question[0].name.to_text() == "WwW.SinkDNS.Test."
    assert response.answer[0][0].address == "192.0.2.10"


def test_cname_chain(server):
    response = ask(server, "alias.sinkdns.test")
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]


def test_edns_only_when_asked(server):
    assert ask(server, "www.sinkdns.test", use_edns=False).edns == -1
    response = ask(server, "www.sinkdns.test", use_edns=0, payload=4096)
    assert response.edns == 0
    assert response.payload == 1232


def test_tcp(server):
    response = ask(server, "www.sinkdns.test", "AAAA", tcp=True)
    assert response.answer[0][0].address == "2001:db8::10"


def test_pipelined_tcp_answers_every_query(server):
    queries = [dns.message.make_query(name, "A") for name in ("www.sinkdns.test", "mail.sinkdns.test", "nope.sinkdns.test")]
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        conn.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries)))
        answers = {}
        buf = b""
        while len(answers) < len(queries):
            chunk = conn.recv(65535)
            assert chunk, "connection closed before every answer arrived"
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                length = struct.unpack("!H", buf[:2])[0]
                message = dns.message.from_wire(buf[2:2 + length])
                buf = buf[2 + length:]
                answers[message.id] = message
    by_name = {answers[q.id].question[0].name.to_text(): answers[q.id] for q in queries}
    assert by_name["www.sinkdns.test."].answer[0][0].address == "192.0.2.10"
    assert by_name["mail.sinkdns.test."].answer[0][0].address == "192.0.2.25"
    assert by_name["nope.sinkdns.test."].rcode() == dns.rcode.NXDOMAIN


def test_large_answer_truncated_over_udp_and_whole_over_tcp(server):
    udp = ask(server, "big.sinkdns.test", "TXT", use_edns=0, payload=1232)
    assert udp.flags & dns.flags.TC
    assert udp.answer == []
    plain = ask(server, "big.sinkdns.test", "TXT", use_edns=False)
    assert plain.flags & dns.flags.TC
    whole = ask(server, "big.sinkdns.test", "TXT", tcp=True)
    assert not whole.flags & dns.flags.TC
    assert len(whole.answer[0]) == 20  # sinkdns fetched it from nsd over TCP after nsd truncated it


def test_cache_counts_ttl_down(server):
    first = ask(server, "short.sinkdns.test")
    assert first.answer[0].ttl == 60
    time.sleep(1.1)  # TTLs count in whole seconds: real time has to pass
    second = ask(server, "short.sinkdns.test")
    assert second.answer[0].ttl < 60
    assert second.answer[0][0].address == "192.0.2.60"


def test_localhost_and_special_names_answered_locally(server):
    assert ask(server, "localhost").answer[0][0].address == "127.0.0.1"
    assert ask(server, "db.localhost", "AAAA").answer[0][0].address == "::1"
    for name in ("hidden.onion", "printer.local", "x.invalid", "4.3.168.192.in-addr.arpa", "1.0.0.10.in-addr.arpa"):
        response = ask(server, name, "PTR" if "arpa" in name else "A")
        assert response.rcode() == dns.rcode.NXDOMAIN, name
        assert response.authority[0].rdtype == dns.rdatatype.SOA


@pytest.mark.parametrize(
    "wire, rcode",
    [
        (struct.pack("!HHHHHH", 7, 0x0100, 0, 0, 0, 0), dns.rcode.FORMERR),  # no question
        (dns.message.make_query("www.sinkdns.test", "A").to_wire()[:-3], dns.rcode.FORMERR),  # cut short
        (bytes.fromhex("0007" "2900" "0001 0000 0000 0000") + b"\x03www\x00\x00\x01\x00\x01", dns.rcode.NOTIMP),
        (dns.message.make_query("version.bind", "TXT", "CH").to_wire(), dns.rcode.REFUSED),
        (dns.message.make_query("sinkdns.test", "AXFR").to_wire(), dns.rcode.REFUSED),
    ],
)
def test_bad_queries_get_error_codes(server, wire, rcode):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(wire, (server.host, server.port))
        data = sock.recv(65535)
    assert data[:2] == wire[:2]
    assert data[3] & 0x0F == rcode


def test_responses_and_runts_are_dropped_and_server_keeps_answering(server):
    query = dns.message.make_query("www.sinkdns.test", "A").to_wire()
    response_like = query[:2] + bytes([query[2] | 0x80]) + query[3:]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        for junk in (b"", b"\x00" * 5, response_like):
            sock.sendto(junk, (server.host, server.port))
            with pytest.raises(socket.timeout):
                sock.recv(65535)
    assert ask(server, "www.sinkdns.test").answer[0][0].address == "192.0.2.10"


def test_dig_sees_the_answer(server):
    dig = require("dig")
    out = subprocess.run(
        [dig, f"@{server.host}", "-p", str(server.port), "www.sinkdns.test", "+short"],
        capture_output=True, text=True, timeout=20,
    )
    assert out.stdout.split() == ["192.0.2.10"]
    tcp = subprocess.run(
        [dig, f"@{server.host}", "-p", str(server.port), "www.sinkdns.test", "AAAA", "+tcp", "+short"],
        capture_output=True, text=True, timeout=20,
    )
    assert tcp.stdout.split() == ["2001:db8::10"]


def test_ipv6_listener(nsd, start_sinkdns):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    server = start_sinkdns("--upstream", nsd.address, listen=("[::1]:0", "127.0.0.1:0"))
    (v6host, v6port), _ = server.dns
    response = dns.query.udp(dns.message.make_query("www.sinkdns.test", "A"), v6host, port=v6port, timeout=5)
    assert response.answer[0][0].address == "192.0.2.10"


def test_idle_tcp_connection_is_closed(nsd, start_sinkdns, tmp_path):
    config = tmp_path / "idle.toml"
    config.write_text("[server]\ntcp_idle_timeout = 0.5\n")
    server = start_sinkdns("--config", str(config), "--upstream", nsd.address)
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        started = time.monotonic()
        assert conn.recv(1) == b""  # closed by the server, not by our 5 s timeout
        assert time.monotonic() - started < 1.0 + 0.5


def test_zero_length_tcp_message_closes_the_connection(server):
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        conn.sendall(b"\x00\x00")
        assert conn.recv(1) == b""


def test_first_queries_after_the_port_opens_are_answered(nsd, tmp_path):
    """Queries that arrive the moment the port is bound, before the ready line, get real answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from tests.support.process import Sinkdns

    server = Sinkdns(tmp_path / "early", "--upstream", nsd.address, listen=(f"127.0.0.1:{port}",))
    query = dns.message.make_query("www.sinkdns.test", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.005)
        server.ready_file.unlink(missing_ok=True)
        proc = subprocess.Popen(server.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            first = None
            while first is None and time.monotonic() < deadline and proc.poll() is None:
                sock.sendto(query.to_wire(), ("127.0.0.1", port))
                try:
                    first = dns.message.from_wire(sock.recv(65535))
                except (socket.timeout, ConnectionRefusedError):
                    continue
        finally:
            proc.terminate()
            proc.wait(10)
    assert first is not None, "no answer"
    assert first.rcode() == dns.rcode.NOERROR
