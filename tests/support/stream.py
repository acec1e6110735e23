"""A bounded stream of UDP queries, paced, from several sockets, every send and answer timed by ID.

Several source ports because `--workers` shares one port with SO_REUSEPORT, which picks the worker by
the client's address and port: one socket would reach one worker only. Query i carries ID i, so a test
can say which queries were answered, when, and which were not.
"""

from __future__ import annotations

import select
import socket
import threading
import time

import dns.message

MAX_QUERIES = 65536  # IDs are 16 bits


def queries(names: list[tuple[str, str]]) -> list[bytes]:
    """Wire queries for (name, type) pairs, query i with ID i."""
    if len(names) > MAX_QUERIES:
        raise ValueError(f"at most {MAX_QUERIES} queries in one stream")
    out = []
    for i, (name, rdtype) in enumerate(names):
        query = dns.message.make_query(name, rdtype, use_edns=0)
        query.id = i
        out.append(query.to_wire())
    return out


class QueryStream(threading.Thread):
    """Sends `wires` to `target` at `rate` a second, round-robin over `sockets` sockets, and reads the
    answers. `hold()` stops sending (the rest stay unsent) and answers are still read; `stop()` ends
    it. It ends on its own once everything sent is answered and nothing more is to be sent, or `linger`
    seconds after the last send, and in any case after twice the time the stream needs plus `linger`."""

    def __init__(self, target: tuple[str, int], wires: list[bytes], rate: float, sockets: int = 8,
                 linger: float = 10.0) -> None:
        super().__init__(name="query-stream", daemon=True)
        self.target = target
        self.wires = wires
        self.rate = rate
        self.linger = linger
        self.socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(sockets)]
        for sock in self.socks:
            sock.setblocking(False)
        self.sent: dict[int, float] = {}  # ID -> monotonic time sent
        self.answers: dict[int, tuple[float, bytes]] = {}  # ID -> (monotonic time received, the answer)
        self._holding = threading.Event()
        self._stopping = threading.Event()

    def hold(self) -> None:
        """Send nothing more; keep reading answers."""
        self._holding.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.join(timeout)
        for sock in self.socks:
            sock.close()

    @property
    def unanswered(self) -> list[int]:
        return [i for i in self.sent if i not in self.answers]

    def run(self) -> None:
        start = last_send = time.monotonic()
        deadline = start + 2 * len(self.wires) / self.rate + self.linger
        while not self._stopping.is_set() and (now := time.monotonic()) < deadline:
            due = 0 if self._holding.is_set() else min(len(self.wires), int((now - start) * self.rate) + 1)
            while len(self.sent) < due:
                i = len(self.sent)
                try:
                    self.socks[i % len(self.socks)].sendto(self.wires[i], self.target)
                except OSError:  # an error from an earlier packet, reported on this send: counted as sent
                    pass
                self.sent[i] = last_send = time.monotonic()
            finished = self._holding.is_set() or len(self.sent) == len(self.wires)
            if finished and (len(self.answers) >= len(self.sent) or now - last_send > self.linger):
                break
            self._read(0.005)

    def _read(self, wait: float) -> None:
        readable, _, _ = select.select(self.socks, [], [], wait)
        for sock in readable:
            while True:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    break
                except OSError:  # ICMP port unreachable: the server's port is closed
                    break
                if len(data) >= 2:
                    self.answers.setdefault(int.from_bytes(data[:2], "big"), (time.monotonic(), data))
