"""`--workers 2` under a steady stream of queries: SIGTERM answers what is in flight and exits 0 in time;
a worker killed with SIGKILL is restarted while the other keeps answering.

The stream (tests/support/stream.py) comes from several source ports, so both workers get a share.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.support.fake_upstream import FakeUpstream, Send, answer
from tests.support.stream import QueryStream, queries
from tests.support.wait import until

pytestmark = pytest.mark.e2e

STOP_BOUND = 10.0  # the target is 5 s; twice that, so a busy machine does not fail the test
SLOW = 1.0  # the slow upstream's delay: within one attempt's timeout (below), inside the 4 s drain
GAP_BOUND = 2.0  # longest silence allowed while a worker dies (what is measured is tens of milliseconds)


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def slow_or_fast(query, transport):
    """Names under slow.example are answered after SLOW seconds, the rest at once."""
    name = str(query.q.qname)
    data = answer(query, f"{name} 300 IN A 192.0.2.7")
    return [Send(data, after=SLOW)] if name.endswith("slow.example.") else [data]


def slow_upstream_flags(tmp_path, address: str) -> list[str]:
    """One attempt may take 2 s, so the slow upstream's answers are awaited, not timed out."""
    config = tmp_path / "slow-upstream.toml"
    config.write_text("[upstream]\ntimeout = 2.0\ndeadline = 3.0\n")
    zones = tmp_path / "zones"
    zones.mkdir()
    return ["--config", str(config), "--zones", str(zones), "--upstream", address]


def addresses(data: bytes) -> list[str]:
    response = dns.message.from_wire(data)
    assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())
    return [rd.address for rrset in response.answer for rd in rrset]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_answers_queries_in_flight_and_exits_0(tmp_path, start_sinkdns, workers):
    with FakeUpstream(slow_or_fast) as up:
        server = start_sinkdns(*slow_upstream_flags(tmp_path, up.address), "--workers", str(workers))
        assert len(children(server.proc.pid)) == (workers if workers > 1 else 0)
        names = [(f"q{i}.{'slow' if i % 2 else 'fast'}.example", "A") for i in range(2000)]
        stream = QueryStream((server.host, server.port), queries(names), rate=200)
        stream.start()
        until(lambda: len(stream.answers) >= 100, 20, "answers from the stream")
        stream.hold()
        fast = [i for i in stream.sent if i % 2 == 0]
        until(lambda: all(i in stream.answers for i in fast), 10, "every fast query sent to be answered")
        in_flight = stream.unanswered  # sent, read by a worker (queries sent after them were answered), awaited
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        code = server.proc.wait(STOP_BOUND)
        stopped = time.monotonic() - started
        stream.join(1)  # the answers sent before the exit are in the client's buffers: read them
        stream.stop()
    assert code == 0
    assert stopped < STOP_BOUND
    assert in_flight and all(i % 2 for i in in_flight), in_flight
    dropped = [i for i in in_flight if i not in stream.answers]
    assert not dropped, f"{len(dropped)} of {len(in_flight)} queries in flight at SIGTERM went unanswered"
    for i in in_flight:
        assert addresses(stream.answers[i][1]) == ["192.0.2.7"]


def serves(pid: int, port: int) -> bool:
    """Whether process `pid` holds a UDP socket bound to `port`: a worker binds once it is ready to read."""
    inodes = {line.split()[9] for line in Path("/proc/net/udp").read_text().splitlines()[1:]
              if int(line.split()[1].rpartition(":")[2], 16) == port}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def restarted(server, gone: set[int]) -> int | None:
    """The worker started in place of those in `gone`, once it serves on the port."""
    fresh = [pid for pid in children(server.proc.pid) if pid not in gone]
    return next((pid for pid in fresh if serves(pid, server.port)), None)


def test_a_killed_worker_is_restarted_and_the_other_answers_meanwhile(nsd, start_sinkdns):
    server = start_sinkdns("--upstream", nsd.address, "--workers", "2")
    first, second = children(server.proc.pid)
    names = [(f"{label}.sinkdns.test", "A") for label in ("www", "mail")] * 3000
    stream = QueryStream((server.host, server.port), queries(names), rate=200)
    stream.start()
    until(lambda: len(stream.answers) >= 200, 20, "answers from the stream")
    killed = time.monotonic()
    os.kill(first, signal.SIGKILL)
    until(lambda: restarted(server, {first, second}), 30, "a new worker serving in place of the killed one")
    # The survivor answered alone until now; with it killed too, the restarted worker must answer alone.
    answered = len(stream.answers)
    os.kill(second, signal.SIGKILL)
    until(lambda: len(stream.answers) >= answered + 200, 20, "answers from the restarted worker")
    stream.hold()
    stream.join(10)
    stream.stop()
    times = sorted(t for t, _ in stream.answers.values())
    gap = max(b - a for a, b in zip(times, times[1:]) if b > killed)
    assert gap < GAP_BOUND, f"no answer for {gap:.2f} s while workers were killed and restarted"
    lost = len(stream.unanswered)
    assert lost < 0.05 * len(stream.sent), f"{lost} of {len(stream.sent)} queries unanswered"
    assert server.stop() == 0
