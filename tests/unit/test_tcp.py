"""TcpConnection on a real socket pair: slots, the output bound that stops reading, the timeouts."""

from __future__ import annotations

import asyncio
import socket

import dns.message

from sinkdns.model import Outcome, Response
from sinkdns.resolvers.instrument import QueryStats
from sinkdns.transport.dispatch import Dispatcher
from sinkdns.transport.tcp import PRESSURE_IDLE_TIMEOUT, TcpConnection, TcpLimits
from sinkdns.wire import build


def answer_everything(req):
    return Response(build.answer(req, answers=(build.rr(build.QNAME_POINTER, 16, 60, b"\xff" + b"x" * 255),)),
                    Outcome.LOCAL)


def framed(name: str) -> bytes:
    wire = dns.message.make_query(name, "TXT").to_wire()
    return len(wire).to_bytes(2, "big") + wire


async def connect(limits: TcpLimits) -> tuple[TcpConnection, socket.socket]:
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        theirs = socket.socket()
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        theirs.connect(listener.getsockname())
        ours, _ = listener.accept()
    theirs.setblocking(False)
    _, conn = await loop.connect_accepted_socket(lambda: TcpConnection(Dispatcher(answer_everything, QueryStats()), limits), ours)
    return conn, theirs


def test_a_client_that_does_not_read_stops_being_read_and_is_cut_at_the_idle_timeout():
    async def main():
        limits = TcpLimits(idle_timeout=0.3, max_pending=16 * 1024)
        conn, client = await connect(limits)
        query = framed("x.example") * 50
        sent = 0
        for _ in range(2000):  # ~50 queries a round, each answered with ~300 bytes
            try:
                sent += client.send(query)
            except BlockingIOError:
                pass
            await asyncio.sleep(0)
            if not conn.reading:
                break
        assert not conn.reading and conn.output_full
        # Past the bound no further query is answered: at most one answer more than the bound is held.
        assert conn.transport.get_write_buffer_size() <= limits.max_pending + 400
        assert conn.buffer  # the queries not answered yet wait, unread ones stay in the kernel
        await asyncio.sleep(0.6)
        assert conn.transport is None and limits.open == 0  # aborted: close() would wait for the reader
        client.close()

    asyncio.run(main())


def test_reading_resumes_when_the_client_drains():
    async def main():
        limits = TcpLimits(max_pending=8 * 1024)
        conn, client = await connect(limits)
        while conn.reading:
            try:
                client.send(framed("x.example") * 20)
            except BlockingIOError:
                pass
            await asyncio.sleep(0)
        for _ in range(1000):
            try:
                while client.recv(65536):
                    pass
            except BlockingIOError:
                pass
            await asyncio.sleep(0.001)
            if conn.reading:
                break
        assert conn.reading and not conn.output_full
        conn.transport.close()
        client.close()

    asyncio.run(main())


def test_slots_per_client_and_in_all():
    limits = TcpLimits(max_connections=3, max_per_client=2)
    assert limits.admit("10.0.0.1") and limits.admit("10.0.0.1")
    assert not limits.admit("10.0.0.1")
    assert limits.admit("10.0.0.2") and not limits.admit("10.0.0.3")
    assert limits.rejected == 2
    limits.release("10.0.0.1")
    assert limits.admit("10.0.0.3") and limits.per_client == {"10.0.0.1": 1, "10.0.0.2": 1, "10.0.0.3": 1}


def test_the_idle_timeout_shortens_when_more_than_half_the_slots_are_taken():
    limits = TcpLimits(max_connections=4, idle_timeout=10.0)
    for host in ("a", "b"):
        limits.admit(host)
    assert limits.idle() == 10.0
    limits.admit("c")
    assert limits.idle() == PRESSURE_IDLE_TIMEOUT
