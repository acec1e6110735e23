"""The properties fuzzed by `make test` (hypothesis, tests/unit/test_fuzz_properties.py) and by `make fuzz`
(atheris, tests/fuzz/target.py): one definition, two budgets.

Packet handler: any bytes from a client go through parse_query and the whole chain of App.build_chain
(with a fake upstream group); nothing may raise, and any reply must be well-formed (dnspython's strict
parser) with the query's ID and QR set.

Upstream-answer handler: any bytes after a real header and question go through Reply.from_wire;
nothing but MalformedReply may raise, and an accepted answer renders into a reply whose header and
question are well-formed, with the client's ID and question. Answers made of well-formed records must
come out whole (every record readable by dnslib).
"""

from __future__ import annotations

import asyncio
import random
import struct
from pathlib import Path
from typing import Callable

import dns.message
import dnslib
from hypothesis import strategies as st

from sinkdns.app import App
from sinkdns.config import CacheConfig, Config, PolicyConfig, UpstreamConfig
from sinkdns.model import Request, Response
from sinkdns.wire import constants as c
from sinkdns.wire.parse import parse_query
from sinkdns.wire.reply import MalformedReply, Reply

CORPUS = Path(__file__).resolve().parents[1] / "data" / "malformed"
SEEDS = [
    bytes.fromhex("".join(line.split("#")[0] for line in path.read_text().splitlines()[1:]))
    for path in sorted(CORPUS.glob("*.hex"))
] + [dns.message.make_query(n, t, use_edns=e).to_wire() for n, t, e in
     (("www.example.com", "A", False), ("ads.example", "AAAA", True), ("localhost", "A", False))]
HEADER = struct.Struct("!HHHHHH")
QUERY = dns.message.make_query("www.example.com", "A", use_edns=0).to_wire()  # the question every answer is to


class FakeGroup:
    """An upstream group that answers at once: every question gets one A record."""

    def ask(self, req: Request, done: Callable[[Reply | None], None]) -> None:
        head = HEADER.pack(0, c.QR | c.RA, 1, 1, 0, 0)
        record = b"\xc0\x0c" + struct.pack("!HHIH", c.TYPE_A, c.CLASS_IN, 60, 4) + bytes((192, 0, 2, 1))
        done(Reply.from_wire(head + req.question + record, 12 + len(req.question), 0.0))


class BadGroup:
    """An upstream group whose answer is the bytes it was given, after the query's own header and question."""

    def __init__(self) -> None:
        self.body = b""
        self.flags = 0

    def ask(self, req: Request, done: Callable[[Reply | None], None]) -> None:
        data = self.body
        head = HEADER.pack(0, self.flags | c.QR, 1, *struct.unpack("!HHH", data[:6].ljust(6, b"\0")))
        try:
            reply = Reply.from_wire(head + req.question + data[6:], 12 + len(req.question), 0.0)
        except MalformedReply:
            reply = None  # what the real group answers when no server gave a usable answer
        done(reply)


def build_app(zones: Path, group: FakeGroup | BadGroup, cache_size: int = 1000) -> App:
    """The real chain of stages, its upstream group replaced by a fake (no sockets are opened)."""
    (zones / "block.domains").write_text("ads.example\nblocked.example\n")
    config = Config(
        upstream=UpstreamConfig(servers=(("127.0.0.1", 9),)),
        policy=PolicyConfig(zones=str(zones)),
        cache=CacheConfig(size=cache_size),
    )
    app = App(config)
    app.forward.default = group
    return app


def mutated(seed: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """`seed` with byte flips, insertions and deletions applied, as a mutation fuzzer would."""
    data = bytearray(seed)
    for kind, where, value in edits:
        pos = where % (len(data) + 1)
        if kind == 0 and data:
            data[pos % len(data)] = value
        elif kind == 1:
            data[pos:pos] = bytes((value,))
        elif data:
            del data[pos % len(data)]
    return bytes(data)


edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8)
client_packets = st.one_of(
    st.binary(max_size=600),
    st.builds(mutated, st.sampled_from(SEEDS), edits),
)


def run(result, loop: asyncio.AbstractEventLoop) -> Response:
    return result if type(result) is Response else loop.run_until_complete(result)


def check_packet(app: App, loop: asyncio.AbstractEventLoop, data: bytes, transport: str = "udp") -> None:
    """The packet-handler property for one input."""
    req = parse_query(data, ("127.0.0.1", 5353), transport, 0.0)
    if req is None:
        return
    res = run(app.chain(req), loop)
    if res.wire is None:
        return
    check_wire(res.wire, data[:2])


def check_wire(wire: bytes, qid: bytes) -> None:
    assert wire[:2] == qid and wire[2] & 0x80
    if (wire[2] >> 3) & 0xF == 5:  # dnspython reads an UPDATE by other rules: check the layout as a QUERY
        wire = wire[:2] + bytes((wire[2] & 0x87,)) + wire[3:]
    dns.message.from_wire(wire)


def record(owner: bytes, rtype: int, rdata: bytes, ttl: int) -> bytes:
    return owner + struct.pack("!HHIH", rtype, c.CLASS_IN, ttl, len(rdata)) + rdata


NAMES = (b"\xc0\x0c", b"\x03www\x07example\x03com\x00", b"\x00", b"\x01a\xc0\x0c")


class Choices:
    """Choices read from fuzzer bytes, one byte each; past the end every choice is 0, so any bytes decode.

    Lets hypothesis (st.binary) and atheris (raw bytes) build well-formed answers with one definition.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def below(self, n: int) -> int:
        value = self.data[self.pos] % n if self.pos < len(self.data) else 0
        self.pos += 1
        return value

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n].ljust(n, b"\0")
        self.pos += n
        return chunk

    def name(self) -> bytes:
        return NAMES[self.below(len(NAMES))]

    def text(self) -> bytes:
        """One character-string: a length octet and that many octets."""
        n = self.below(41)
        return bytes((n,)) + self.take(n)


RDATA = (
    (c.TYPE_A, lambda ch: ch.take(4)),
    (c.TYPE_AAAA, lambda ch: ch.take(16)),
    (c.TYPE_CNAME, Choices.name),
    (c.TYPE_TXT, Choices.text),
    (c.TYPE_SOA, lambda ch: ch.name() + ch.name() + struct.pack("!IIIII", 1, 2, 3, 4, 5)),
    (65280, lambda ch: ch.take(1 + ch.below(30))),  # dnslib: no empty RDATA
)


def good_record(ch: Choices) -> bytes:
    owner = ch.name()
    rtype, rdata = RDATA[ch.below(len(RDATA))]
    return record(owner, rtype, rdata(ch), int.from_bytes(ch.take(4), "big"))


def good_answer(data: bytes) -> tuple[int, bytes]:
    """Flags (an rcode) and a body of well-formed records: counts then records, as BadGroup expects."""
    ch = Choices(data)
    flags = (0, 2, 3, 5)[ch.below(4)]
    an, ns, ar = ([good_record(ch) for _ in range(ch.below(5))] for _ in range(3))
    return flags, struct.pack("!HHH", len(an), len(ns), len(ar)) + b"".join(an + ns + ar)


def split_answer(data: bytes) -> tuple[int, bytes]:
    """Raw fuzzer bytes as an upstream answer: two bytes of flags, then the body BadGroup expects."""
    return int.from_bytes(data[:2].ljust(2, b"\0"), "big"), data[2:]


def seed_inputs(entry: str) -> list[bytes]:
    """Raw-byte seeds for one entry point of the long run: real queries, and answers that parse."""
    choices = [random.Random(i).randbytes(200) for i in range(16)]
    if entry == "packet":
        return SEEDS
    if entry == "answer":
        return [flags.to_bytes(2, "big") + body for flags, body in map(good_answer, choices)]
    return choices


good_answers = st.binary(max_size=400).map(good_answer)
bad_answers = st.one_of(
    st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=300)),
    st.builds(lambda fb, e: (fb[0], mutated(fb[1], e)), good_answers, edits),
)


def check_answer(app: App, group: BadGroup, loop: asyncio.AbstractEventLoop, flags: int, body: bytes, whole: bool) -> None:
    """The upstream-answer property: through Reply.from_wire alone, then through the whole chain."""
    query = QUERY
    req = parse_query(query, ("127.0.0.1", 5353), "udp", 0.0)
    head = HEADER.pack(0, flags | c.QR, 1, *struct.unpack("!HHH", body[:6].ljust(6, b"\0")))
    try:
        reply = Reply.from_wire(head + req.question + body[6:], 12 + len(req.question), 0.0)
    except MalformedReply:
        assert not whole, "a well-formed answer was rejected"
        reply = None
    if reply is not None:
        wire = reply.render(req, 10.0)
        assert wire[:2] == query[:2] and wire[12:12 + len(req.question)] == req.question
        dns.message.from_wire(wire, question_only=not whole, one_rr_per_rrset=True)  # as strict, less work
        if whole:
            dnslib.DNSRecord.parse(wire)
    group.body, group.flags = body, flags
    res = run(app.chain(req), loop)  # `app` has no cache, so every input reaches the group
    assert res.wire[:2] == query[:2]
    dns.message.from_wire(res.wire, question_only=True)
