"""The second sender of the soak: the malformed corpus, sent over UDP as fast as one thread can."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "data" / "malformed"


def load_corpus(directory: Path = CORPUS) -> list[bytes]:
    """The packets of every `*.hex` case: the first line says what is expected, the rest is hex with
    `#` comments (the format tests/e2e/test_malformed_corpus.py replays)."""
    packets = []
    for path in sorted(directory.glob("*.hex")):
        body = path.read_text().splitlines()[1:]
        packets.append(bytes.fromhex("".join(line.split("#")[0] for line in body).replace(" ", "")))
    return [p for p in packets if p]  # an empty datagram is a case for TCP only


BURST = 100  # packets sent between two looks at the clock


class Flood(threading.Thread):
    """Sends the packets round-robin to `target` until stopped, from several source ports (as a
    flood from many clients would look), never reading the replies: they are the server's problem.

    `rate` packets a second, or as fast as the kernel takes them when 0. Every UDP server shares one
    receive buffer among all senders, so a flood far beyond what the server can read crowds out the
    well-formed queries in the kernel, whatever the server does; a rate makes runs comparable."""

    def __init__(self, target: tuple[str, int], packets: list[bytes], rate: int = 0, sources: int = 8) -> None:
        super().__init__(name="flood", daemon=True)
        self.target = target
        self.packets = packets
        self.rate = rate
        self.sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(sources)]
        for sock in self.sockets:
            sock.setblocking(False)
        self.sent = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        packets, target, sockets = self.packets, self.target, self.sockets
        started = time.monotonic()
        n = 0
        while not self.stopping.is_set():
            for i in range(n, n + BURST):
                try:
                    sockets[i % len(sockets)].sendto(packets[i % len(packets)], target)
                except BlockingIOError:  # our own send buffer is full: the kernel is the bottleneck
                    pass
                except ConnectionRefusedError:  # an ICMP error from an earlier packet: keep going
                    pass
            n += BURST
            if self.rate:
                ahead = n / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    self.stopping.wait(ahead)
        self.sent = n

    def stop(self) -> int:
        """Stop sending; the number of packets sent."""
        self.stopping.set()
        self.join(5)
        for sock in self.sockets:
            sock.close()
        return self.sent
