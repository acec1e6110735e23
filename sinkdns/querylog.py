"""The query log: one JSON object per answered query, written by a thread so the event loop never waits.

Off by default. This is where "top blocked domains" and "top clients" come from: query names and client
addresses never become metric labels. The loop only appends a tuple to a bounded queue; when the queue is
full the line is dropped and counted, because a slow disk must not slow DNS. The writer thread formats
and writes in batches, rotates the file by size, and survives a full or failing disk by counting the
lines it could not write.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import stat
import threading
import time
from collections import deque

import dns.rcode
import dns.rdatatype

from sinkdns.model import Decision, Request, Response

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.05  # how long a line may wait in the queue before the writer picks it up

# Formatting runs on the writer thread but still holds the GIL the event loop needs, so repeated work
# (names of types and rcodes, the second's timestamp, a client's network) is cached.
_encode = json.JSONEncoder(separators=(",", ":")).encode
_qtype = functools.lru_cache(maxsize=256)(dns.rdatatype.to_text)
_rcode = functools.lru_cache(maxsize=64)(dns.rcode.to_text)


@functools.lru_cache(maxsize=4)
def _second(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


def _when(epoch: float) -> str:
    """RFC 3339 UTC with milliseconds."""
    second = int(epoch)
    return f"{_second(second)}.{int((epoch - second) * 1000):03d}Z"


@functools.lru_cache(maxsize=65536)
def truncate_client(host: str) -> str:
    """The client's /24 (IPv4) or /48 (IPv6) network address: enough to tell networks apart, not people.
    An IPv4 client seen on a dual-stack socket (::ffff:a.b.c.d) is truncated as IPv4."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network((addr, prefix), strict=False).network_address)


def format_line(entry: tuple, truncate: bool) -> str:
    """One queued entry as a JSON line; runs on the writer thread."""
    when, latency, client, transport, qname, qtype, outcome, rcode, decision, upstream = entry
    host = client[0] if client else ""
    record = {
        "time": _when(when),
        "client": truncate_client(host) if truncate else host,
        "protocol": transport,
        "qname": qname or ".",
        "qtype": _qtype(qtype),
        "result": outcome,
        "rcode": _rcode(rcode),
    }
    if decision is not None:
        d: Decision = decision
        record.update(customer=d.customer, zone=d.zone, rule=d.rule, action=d.action)
    if upstream:
        record["upstream"] = upstream
    record["latency"] = round(latency, 6)
    return _encode(record) + "\n"


class RotatingFile:
    """Appends bytes to `path`; past `max_bytes` the file moves to path.1 (path.1 to path.2 ...), keeping
    `backups` old files. Something other than a regular file (a pipe, /dev/full) is never rotated."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.fd: int | None = None
        self.size = 0
        self.regular = False

    def _open(self, truncate: bool = False) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        self.fd = os.open(self.path, flags, 0o640)
        info = os.fstat(self.fd)
        self.regular = stat.S_ISREG(info.st_mode)
        self.size = info.st_size if self.regular else 0
        return self.fd

    def _rotate(self) -> None:
        self.close()
        if self.backups == 0:
            self._open(truncate=True)
            return
        for n in range(self.backups - 1, 0, -1):
            older = f"{self.path}.{n}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{n + 1}")
        os.replace(self.path, f"{self.path}.1")
        self._open()

    def write(self, data: bytes) -> None:
        """Write all of `data` or raise OSError."""
        fd = self.fd if self.fd is not None else self._open()
        if self.regular and self.size and self.size + len(data) > self.max_bytes:
            self._rotate()
            fd = self.fd
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
            self.size += written

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class QueryLog:
    """The query log: `log()` on the event loop, formatting and writing on a thread of its own.

    `written`, `dropped` (queue full) and `failed` (the file could not be written) count lines.
    """

    def __init__(
        self,
        path: str,
        max_bytes: int = 100 * 1024 * 1024,
        backups: int = 5,
        truncate_clients: bool = False,
        queue_size: int = 10_000,
        clock=time.monotonic,
        wall=time.time,
    ) -> None:
        self.file = RotatingFile(path, max_bytes, backups)
        self.truncate_clients = truncate_clients
        self.queue_size = queue_size
        self.clock = clock
        self.wall = wall
        self.queue: deque[tuple] = deque()
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="querylog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def log(self, req: Request, res: Response, upstream: str = "") -> None:
        """Queue one line; never blocks: a full queue drops the line and counts it."""
        queue = self.queue
        if len(queue) >= self.queue_size:
            self.dropped += 1
            return
        queue.append((
            self.wall(), self.clock() - req.received, req.client, req.transport, req.qname, req.qtype,
            res.outcome, res.rcode, res.decision, upstream,
        ))

    def close(self) -> None:
        """Write what is queued, then stop the writer and close the file."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.file.close()

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(FLUSH_SECONDS)
            self.flush()
            if stopping:
                return

    def flush(self) -> None:
        """Write every line queued so far, in one write; the writer thread calls this."""
        queue = self.queue
        count = len(queue)
        if not count:
            return
        lines = [format_line(queue.popleft(), self.truncate_clients) for _ in range(count)]
        try:
            self.file.write("".join(lines).encode())
        except OSError as exc:
            if not self._failing:
                log.warning("query log cannot be written", extra={"path": self.file.path, "error": str(exc)})
                self._failing = True
            self.failed += count
            self.file.close()
            return
        if self._failing:
            log.warning("query log is written again", extra={"path": self.file.path})
            self._failing = False
        self.written += count
