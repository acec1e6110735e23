"""The query log: its JSON lines, client truncation, a full queue, a full disk and size rotation."""

from __future__ import annotations

import json
import os

import pytest

from sinkdns.model import Decision, Outcome, Response
from sinkdns.querylog import QueryLog, truncate_client
from tests.unit.util import request


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def query(name: str = "www.example.com", rdtype: str = "A", client: tuple = ("192.0.2.77", 5353)):
    req = request(name, rdtype, now=10.0)
    req.client = client
    return req


def make(path, **kwargs) -> QueryLog:
    return QueryLog(str(path), clock=Clock(10.0025), wall=Clock(1_700_000_000.25), **kwargs)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_forwarded_and_a_blocked_query(tmp_path):
    path = tmp_path / "query.log"
    qlog = make(path)
    qlog.log(query(), Response(b"", Outcome.FORWARDED, 0), "192.0.2.53:53")
    rule = Decision("blockpage", "acme", "acme.rpz", "*.acme.example", "acme.rpz:4")
    qlog.log(query("shop.acme.example", "AAAA"), Response(b"", Outcome.BLOCKED, 3, decision=rule))
    qlog.flush()
    assert lines(path) == [
        {"time": "2023-11-14T22:13:20.250Z", "client": "192.0.2.77", "protocol": "udp", "qname": "www.example.com",
         "qtype": "A", "result": "forwarded", "rcode": "NOERROR", "upstream": "192.0.2.53:53", "latency": 0.0025},
        {"time": "2023-11-14T22:13:20.250Z", "client": "192.0.2.77", "protocol": "udp",
         "qname": "shop.acme.example", "qtype": "AAAA", "result": "blocked", "rcode": "NXDOMAIN",
         "customer": "acme", "zone": "acme.rpz", "rule": "*.acme.example", "action": "blockpage", "latency": 0.0025},
    ]
    assert (qlog.written, qlog.dropped, qlog.failed) == (2, 0, 0)


@pytest.mark.parametrize(
    "client, expected",
    [("192.0.2.77", "192.0.2.0"), ("2001:db8:1234:5678::9", "2001:db8:1234::"), ("::ffff:192.0.2.7", "192.0.2.0")],
)
def test_client_addresses_truncated_to_24_and_48(client, expected):
    assert truncate_client(client) == expected


def test_truncate_clients_option(tmp_path):
    path = tmp_path / "query.log"
    qlog = make(path, truncate_clients=True)
    qlog.log(query(client=("2001:db8:1:2::3", 5353, 0, 0)), Response(b"", Outcome.CACHED, 0))
    qlog.flush()
    assert lines(path)[0]["client"] == "2001:db8:1::"


def test_a_full_queue_drops_lines_and_counts_them_without_waiting(tmp_path):
    path = tmp_path / "query.log"
    qlog = make(path, queue_size=3)
    for _ in range(5):
        qlog.log(query(), Response(b"", Outcome.CACHED, 0))
    assert (len(qlog.queue), qlog.dropped) == (3, 2)
    qlog.flush()
    qlog.log(query(), Response(b"", Outcome.CACHED, 0))
    qlog.flush()
    assert (qlog.written, qlog.dropped, len(lines(path))) == (4, 2, 4)


def test_a_full_disk_counts_failed_lines_and_never_raises(caplog):
    qlog = QueryLog("/dev/full")
    qlog.start()
    for _ in range(3):
        qlog.log(query(), Response(b"", Outcome.FORWARDED, 0))
    qlog.close()
    assert (qlog.written, qlog.failed) == (0, 3)
    assert [r.getMessage() for r in caplog.records] == ["query log cannot be written"]


def test_an_unwritable_path_counts_failed_lines(tmp_path):
    qlog = make(tmp_path / "missing-dir" / "query.log")
    qlog.log(query(), Response(b"", Outcome.FORWARDED, 0))
    qlog.flush()
    assert qlog.failed == 1


def test_rotation_by_size_keeps_the_given_number_of_backups(tmp_path):
    path = tmp_path / "query.log"
    qlog = make(path, max_bytes=400, backups=2)
    for batch in range(6):
        for _ in range(2):
            qlog.log(query(f"n{batch}.example"), Response(b"", Outcome.FORWARDED, 0))
        qlog.flush()
    qlog.close()
    assert sorted(os.listdir(tmp_path)) == ["query.log", "query.log.1", "query.log.2"]
    for name in ("query.log", "query.log.1", "query.log.2"):
        assert 0 < (tmp_path / name).stat().st_size <= 400
    newest, older, oldest = (lines(tmp_path / n) for n in ("query.log", "query.log.1", "query.log.2"))
    assert newest[-1]["qname"] == "n5.example" and older[-1]["qname"] == "n4.example"
    assert oldest[-1]["qname"] == "n3.example"
    assert qlog.written == 12


def test_no_backups_truncates_in_place(tmp_path):
    path = tmp_path / "query.log"
    qlog = make(path, max_bytes=300, backups=0)
    for batch in range(3):
        qlog.log(query(f"n{batch}.example"), Response(b"", Outcome.FORWARDED, 0))
        qlog.log(query(f"n{batch}.example"), Response(b"", Outcome.FORWARDED, 0))
        qlog.flush()
    qlog.close()
    assert os.listdir(tmp_path) == ["query.log"]
    assert {line["qname"] for line in lines(path)} == {"n2.example"}


def test_the_writer_thread_writes_what_was_queued_before_close(tmp_path):
    path = tmp_path / "query.log"
    qlog = QueryLog(str(path))
    qlog.start()
    for n in range(100):
        qlog.log(query(f"n{n}.example"), Response(b"", Outcome.CACHED, 0))
    qlog.close()
    assert [line["qname"] for line in lines(path)] == [f"n{n}.example" for n in range(100)]
    assert (qlog.written, qlog.dropped, qlog.failed) == (100, 0, 0)
