"""A light UDP probe of a server's event loop: one query every 5 ms, each with its own ID, answer times
recorded, so the longest gap between two answers is the longest time the server answered nothing.

Ask for a name the server answers itself (a blocked one): the answer comes from the UDP callback,
so its time is the event loop's availability, not the chain's or an upstream's.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass

import dns.message

from tests.bench.bench import LOOPBACK

INTERVAL = 0.005
LATE = 1.0  # seconds answers are still awaited after the last query


@dataclass
class Lag:
    sent: int
    answered: int
    longest_gap: float  # seconds between two answers (or the window's ends), the loop's longest stall
    worst_wait: float  # seconds from a query to its answer, or to the end for an unanswered one


class Probe(threading.Thread):
    """One query every INTERVAL to 127.0.0.1:port, each with its own ID, until stopped (at most `limit`
    seconds and 65,536 queries, one per ID); answer times recorded by ID."""

    def __init__(self, port: int, name: str, limit: float) -> None:
        super().__init__(name="lag-probe", daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((LOOPBACK, port))
        self.wire = bytearray(dns.message.make_query(name, "A").to_wire())
        self.limit = limit
        self.sent: list[float] = []  # send time of query ID i
        self.answers: dict[int, float] = {}
        self.stopping = threading.Event()
        self.started = self.ended = 0.0

    def run(self) -> None:
        self.started = time.monotonic()
        deadline = self.started + self.limit
        next_send = self.started
        while not self.stopping.is_set() and (now := time.monotonic()) < deadline and len(self.sent) < 65536:
            if now >= next_send:
                self.wire[0:2] = len(self.sent).to_bytes(2, "big")
                self.sent.append(now)
                self.sock.send(self.wire)
                next_send += INTERVAL
            self._receive(max(0.0, next_send - time.monotonic()))
        self.ended = time.monotonic()
        while self._receive(LATE):  # late answers still count as answers, at the time they came
            pass
        self.sock.close()

    def _receive(self, timeout: float) -> bool:
        try:
            if not select.select([self.sock], [], [], timeout)[0]:
                return False
            data = self.sock.recv(4096)
        except ConnectionRefusedError:  # nothing listening for a moment: no answer, and the gap shows it
            return False
        self.answers.setdefault(int.from_bytes(data[:2], "big"), time.monotonic())
        return True

    def result(self) -> Lag:
        self.stopping.set()
        self.join(self.limit + 2 * LATE)
        times = sorted(self.answers.values())
        edges = [self.started, *times, self.ended]
        gap = max(b - a for a, b in zip(edges, edges[1:]))
        waits = [self.answers.get(i, self.ended) - t for i, t in enumerate(self.sent)]
        return Lag(len(self.sent), len(self.answers), gap, max(waits, default=0.0))
