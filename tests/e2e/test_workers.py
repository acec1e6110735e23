"""`--workers 2`: two processes on one port, supervised."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.request

import dns.message
import dns.query
import pytest

from tests.support.process import Sinkdns
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


def test_one_client_port_is_spread_over_both_workers(nsd, start_sinkdns):
    """The kernel's hash would send every query from one address and port to one worker."""
    server = start_sinkdns("--upstream", nsd.address, "--metrics", "127.0.0.1:0", "--workers", "2")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(400):
            query = dns.message.make_query(f"n{i}.sinkdns.test", "A")
            dns.query.udp(query, server.host, port=server.port, timeout=5, sock=sock)
    with urllib.request.urlopen(f"http://{server.info['metrics']}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("sinkdns_worker_queries_total")]
    assert len(counts) == 2 and sum(counts) == 400
    assert all(0.35 <= count / 400 <= 0.65 for count in counts), counts


def test_a_sighup_while_the_workers_start_is_served_once_they_are_up(nsd, tmp_path):
    server = Sinkdns(tmp_path / "early", "--upstream", nsd.address, "--workers", "2")

    def hang_up_while_starting(proc: Sinkdns) -> None:
        until(lambda: children(proc.proc.pid), 20, "a worker process")
        proc.signal(signal.SIGHUP)

    server.start(while_starting=hang_up_while_starting)
    try:
        assert answers(server)
        until(lambda: "policy reloaded" in server.log(), 20, "the reload asked for while starting")
    finally:
        assert server.stop() == 0
