"""`--workers 2`: two processes on one port, supervised."""

from __future__ import annotations

import os
import signal
import subprocess

import dns.message
import dns.query
import pytest

from tests.support.wait import until

pytestmark = pytest.mark.e2e


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def answers(server) -> bool:
    for _ in range(20):
        try:
            response = dns.query.udp(dns.message.make_query("www.sinkdns.test", "A"), server.host, port=server.port, timeout=2)
        except dns.exception.Timeout:
            return False
        if response.answer[0][0].address != "192.0.2.10":
            return False
    return True


def test_two_workers_share_the_port_and_a_dead_one_is_replaced(nsd, start_sinkdns):
    server = start_sinkdns("--upstream", nsd.address, "--workers", "2")
    workers = children(server.proc.pid)
    assert len(workers) == 2
    assert answers(server)
    os.kill(workers[0], signal.SIGKILL)
    until(lambda: len(children(server.proc.pid)) == 2 and workers[0] not in children(server.proc.pid), 20, "a new worker")
    assert answers(server)
    assert server.stop() == 0
    assert children(server.proc.pid) == []
