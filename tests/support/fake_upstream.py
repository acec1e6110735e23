"""A DNS server on loopback port 0 whose handler decides, per query, what goes back: an answer, nothing,
garbage, a forged answer first, an answer from another port. Real upstreams cannot misbehave on purpose.

Answers are encoded with dnslib, an independent codec, so a mistake in sinkdns's own use of dnspython
cannot cancel itself out.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable

import dnslib


@dataclass
class Send:
    """Bytes to send back; `from_other_port` sends them from a different socket (a spoof); `framed`
    False sends them over TCP without the length prefix, so the handler can write any frame at all
    (a prefix promising more than follows, or more than 64 KiB). `after` sends them that many seconds
    later from a timer, holding up no other query (a slow upstream, not a stalled one); UDP only, as a
    TCP connection is closed once the handler is done."""

    data: bytes
    from_other_port: bool = False
    framed: bool = True
    after: float = 0.0


Handler = Callable[[dnslib.DNSRecord, str], list]


def answer(query: dnslib.DNSRecord, *zone_lines: str, rcode: int = 0, ttl: int | None = None) -> bytes:
    """An answer to `query` holding the records written in zone-file syntax."""
    reply = query.reply()
    reply.header.rcode = rcode
    for line in zone_lines:
        for rr in dnslib.RR.fromZone(line):
            if rr.rtype == dnslib.QTYPE.SOA:
                reply.add_auth(rr)
            else:
                reply.add_answer(rr)
    return bytes(reply.pack())


@dataclass
class FakeUpstream:
    handler: Handler
    host: str = "127.0.0.1"
    port: int = 0  # a fixed port brings a stopped upstream back where sinkdns expects it
    queries: list[tuple[str, str, str]] = field(default_factory=list)  # (qname, qtype, transport)

    def __post_init__(self) -> None:
        self.udp, self.tcp = self._bind_pair()
        self.port = self.udp.getsockname()[1]
        self.tcp.listen(16)
        self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.other.bind((self.host, 0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _bind_pair(self, attempts: int = 20) -> tuple[socket.socket, socket.socket]:
        """A UDP and a TCP socket on one port. A port the kernel picked free for UDP may be taken for
        TCP (by another suite running beside this one): then pick again."""
        while True:
            attempts -= 1
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, self.port))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, udp.getsockname()[1]))
                return udp, tcp
            except OSError:
                udp.close()
                tcp.close()
                if self.port or not attempts:
                    raise

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in (self.udp, self.tcp, self.other):
            sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.udp, self.tcp], [], [], 0.05)
            for sock in ready:
                if sock is self.udp:
                    data, addr = self.udp.recvfrom(65535)
                    self._reply(data, "udp", lambda out, s=addr: self._send_udp(out, s))
                else:
                    conn, _ = self.tcp.accept()
                    threading.Thread(target=self._serve_tcp, args=(conn,), daemon=True).start()

    def _send_udp(self, out: Send, addr) -> None:
        (self.other if out.from_other_port else self.udp).sendto(out.data, addr)

    def _serve_tcp(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                length = struct.unpack("!H", _read(conn, 2))[0]
                data = _read(conn, length)
            except (OSError, ConnectionError):
                return
            self._reply(data, "tcp", lambda out: conn.sendall(_frame(out)))

    def _reply(self, data: bytes, transport: str, send: Callable[[Send], None]) -> None:
        try:
            query = dnslib.DNSRecord.parse(data)
        except dnslib.DNSError:
            return
        self.queries.append((str(query.q.qname).rstrip(".").lower(), dnslib.QTYPE[query.q.qtype], transport))
        for out in self.handler(query, transport):
            if isinstance(out, (int, float)):
                self._stop.wait(out)  # a deliberate delay
            elif isinstance(out, Send) and out.after:
                timer = threading.Timer(out.after, _send_late, (send, out))
                timer.daemon = True
                timer.start()
            else:
                send(out if isinstance(out, Send) else Send(out))


def _send_late(send: Callable[[Send], None], out: Send) -> None:
    try:
        send(out)
    except OSError:  # the upstream was stopped meanwhile
        pass


def _frame(out: Send) -> bytes:
    return struct.pack("!H", len(out.data)) + out.data if out.framed else out.data


def _read(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf
