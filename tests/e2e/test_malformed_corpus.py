"""Replay tests/data/malformed/*.hex against the real process over UDP and TCP.

Each file holds one case: a first line `# EXPECT: what it is` (EXPECT is drop or an rcode name, or
several joined by |) and the packet as hex. After every case the invariants of reliability.md 2.0
are checked: replies are well-formed (dnspython's strict parser) with the query's ID and question,
an OPT exactly when the query had a readable one, within the client's UDP size; nothing comes back
where the case is dropped; the server still answers a good query; and it logs no error.
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dnslib
import pytest

from tests.support.process import Sinkdns

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parents[1] / "data" / "malformed"
QUIET = 0.3  # seconds of silence that count as "dropped" (G5)


def load(path: Path) -> tuple[set[str], bytes]:
    first, *rest = path.read_text().splitlines()
    assert first.startswith("# ") and ":" in first, f"{path.name}: first line must be '# EXPECT: description'"
    expect = {token.strip() for token in first[2:].partition(":")[0].split("|")}
    assert expect <= {"drop"} | {r.name for r in dns.rcode.Rcode}, f"{path.name}: unknown expectation {expect}"
    return expect, bytes.fromhex("".join(line.split("#")[0] for line in rest).replace(" ", ""))


CASES = sorted(CORPUS.glob("*.hex"))
PARAMS = [pytest.param(p, id=p.stem) for p in CASES]


class EchoUpstream:
    """Answers every query with itself turned into an empty NOERROR response, OPT included: no codec
    in between, so names no library likes (8-bit labels) still get an answer."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            if len(data) >= 12:
                self.sock.sendto(data[:2] + bytes([data[2] | 0x80, (data[3] | 0x80) & 0xF0]) + data[4:], addr)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    upstream = EchoUpstream()
    proc = Sinkdns(tmp_path_factory.mktemp("corpus"), "--upstream", upstream.address).start()
    yield proc
    log = proc.log()
    proc.stop()
    upstream.close()
    assert "Traceback" not in log and " ERROR " not in log and "never retrieved" not in log, log  # G3


def question_end(wire: bytes) -> int | None:
    """Offset just past the question, when it is one plain uncompressed name plus type and class."""
    pos = 12
    while pos < len(wire) and 0 < wire[pos] < 64:
        pos += wire[pos] + 1
    if pos >= len(wire) or wire[pos] != 0 or pos + 5 > len(wire):
        return None
    return pos + 5


def check_reply(case: str, expect: set[str], query: bytes, reply: bytes, transport: str) -> None:
    """G6: well-formed, the query's ID, QR set, the question as sent, OPT iff asked, fits the client."""
    if (query[2] >> 3) & 0xF == dns.opcode.UPDATE:  # dnspython would read the reply as an UPDATE
        parsed = dnslib.DNSRecord.parse(reply)
        assert reply[:2] == query[:2] and parsed.header.qr, case
        assert dns.rcode.to_text(parsed.header.rcode) in expect, case
        return
    message = dns.message.from_wire(reply)
    assert message.flags & dns.flags.QR, case
    assert reply[:2] == query[:2], f"{case}: reply ID differs"
    assert dns.rcode.to_text(message.rcode()) in expect, f"{case}: got {dns.rcode.to_text(message.rcode())}"
    if message.rcode() in (dns.rcode.NOERROR, dns.rcode.BADVERS):
        end = question_end(query)
        assert end is not None and reply[12:end] == query[12:end], f"{case}: question not echoed as sent"
        assert (message.edns >= 0) == (struct.unpack("!H", query[10:12])[0] > 0), f"{case}: OPT iff the query had one"
    if transport == "udp":
        assert len(reply) <= udp_limit(query), f"{case}: {len(reply)} bytes over UDP"


def udp_limit(query: bytes) -> int:
    """What the client can take: 512 without EDNS, else its payload size within 512..1232 (RFC 6891 6.2.5)."""
    try:
        asked = dns.message.from_wire(query)
    except Exception:  # a malformed query: only the largest size sinkdns ever sends applies
        return 1232
    return 512 if asked.edns < 0 else max(512, min(asked.payload, 1232))


def alive(server) -> None:
    """G1: a good query from another socket is answered at once."""
    response = dns.query.udp(dns.message.make_query("localhost", "A"), server.host, port=server.port, timeout=1)
    assert response.answer[0][0].address == "127.0.0.1"


def udp_exchange(server, data: bytes) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(QUIET)
        sock.sendto(data, (server.host, server.port))
        try:
            return sock.recv(65535)
        except socket.timeout:
            return None


def tcp_exchange(server, data: bytes) -> bytes | None:
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        conn.sendall(struct.pack("!H", len(data)) + data)
        conn.settimeout(QUIET)
        try:
            head = conn.recv(2)
        except socket.timeout:
            return None
        if not head:
            return None  # closed without an answer
        conn.settimeout(5)
        length = struct.unpack("!H", head if len(head) == 2 else head + conn.recv(1))[0]
        body = b""
        while len(body) < length:
            chunk = conn.recv(length - len(body))
            assert chunk, "connection closed inside an answer"
            body += chunk
        return body


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("path", PARAMS)
def test_malformed_case(server, path, transport):
    expect, data = load(path)
    reply = (udp_exchange if transport == "udp" else tcp_exchange)(server, data)
    if reply is None:
        assert "drop" in expect, f"{path.stem}: no answer, expected {expect}"
    else:
        assert expect != {"drop"}, f"{path.stem}: answered, expected silence"
        check_reply(path.stem, expect, data, reply, transport)
    alive(server)


def test_the_corpus_covers_the_issue_list():
    names = {p.stem for p in CASES}
    assert len(names) >= 50
    for needed in ("header-only-qdcount-0", "qdcount-2-identical", "ancount-larger-than-packet", "question-cut-short",
                   "label-type-01", "name-256-octets", "pointer-forward", "pointer-to-itself", "pointer-loop",
                   "pointer-past-end", "label-type-10", "opt-in-answer-section", "opt-twice", "edns-version-1",
                   "edns-payload-0", "edns-payload-65535", "response-as-query", "opcode-15", "class-unknown",
                   "type-unknown-65280"):
        assert needed in names, needed
