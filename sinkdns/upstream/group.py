"""Ask a list of upstreams in turn until one gives a usable answer, within one deadline.

A question's way through the servers is a small state machine driven by the pool's callbacks (answer
or timeout), not a coroutine: a miss costs one object and one timer. Only an answer truncated over UDP
starts a task, for the TCP retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from sinkdns.model import Request
from sinkdns.upstream.health import Upstream, in_order
from sinkdns.upstream.pool import UdpPool
from sinkdns.upstream.tcp import exchange_tcp
from sinkdns.wire import constants as c
from sinkdns.wire.build import upstream_query
from sinkdns.wire.reply import MalformedReply, Reply

log = logging.getLogger(__name__)

RCODE_NAMES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}

Done = Callable[[Reply | None], None]


class UpstreamGroup:
    """The first healthy server is asked first; on timeout, error, SERVFAIL or REFUSED the next one is.

    Each attempt gets at most `timeout` seconds and all of them together `deadline`, so the client hears
    SERVFAIL in bounded time rather than silence.
    """

    def __init__(
        self,
        upstreams: list[Upstream],
        pool: UdpPool,
        timeout: float,
        deadline: float,
        min_ttl: int = 0,
        max_ttl: int = 86400,
        clock=time.monotonic,
    ) -> None:
        self.upstreams = upstreams
        self.pool = pool
        self.timeout = timeout
        self.deadline = deadline
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.clock = clock
        self.retries: set[asyncio.Task] = set()  # TCP retries in progress, kept from the garbage collector

    def ask(self, req: Request, done: Done) -> None:
        """Call `done` once with the first usable answer, a SERVFAIL when that is all the servers said,
        or None when no server gave an answer. It may be called before `ask` returns."""
        _Question(self, req, done).next()


class _Question:
    __slots__ = (
        "group", "qname", "query", "name", "tail", "question_end", "deadline", "servers", "tried",
        "up", "started", "attempts", "servfail", "done", "finished",
    )

    def __init__(self, group: UpstreamGroup, req: Request, done: Done) -> None:
        now = group.clock()
        self.group = group
        self.qname = req.qname
        self.query = upstream_query(req)
        self.name = req.qname_wire.lower()
        self.tail = req.question[-4:]
        self.question_end = 12 + len(req.question)
        self.deadline = now + group.deadline
        self.servers = in_order(group.upstreams, now)
        self.tried = 0
        self.up: Upstream | None = None
        self.started = now
        self.attempts: list[str] = []
        self.servfail: Reply | None = None
        self.done = done
        self.finished = False

    def next(self) -> None:
        """Ask the next server, or give the answer when there is none left or no time."""
        group = self.group
        while self.tried < len(self.servers):
            up = self.servers[self.tried]
            self.tried += 1
            self.started = now = group.clock()
            remaining = self.deadline - now
            if remaining <= 0:
                break
            self.up = up
            try:
                group.pool.send(
                    up, self.query, self.name, self.tail, min(group.timeout, remaining), self.answered, self.timed_out,
                )
                return
            except OSError as exc:
                self._failed("error", str(exc) or type(exc).__name__)
        if self.servfail is None:
            log.debug("no upstream answered %s: %s", self.qname, ", ".join(self.attempts) or "no upstream to ask")
        self._finish(self.servfail)

    def answered(self, data: bytes) -> None:
        try:
            if data[2] & 0x02:  # TC: the whole answer only fits over TCP
                retry = asyncio.get_running_loop().create_task(self._over_tcp())
                self.group.retries.add(retry)
                retry.add_done_callback(self.group.retries.discard)
                return
            self.judge(data)
        except Exception:
            self._crashed()

    def timed_out(self) -> None:
        try:
            self._failed("timeout", "timeout")
            self.next()
        except Exception:
            self._crashed()

    async def _over_tcp(self) -> None:
        group, up = self.group, self.up
        try:
            try:
                timeout = min(group.timeout, self.deadline - group.clock())
                data = await exchange_tcp(up, self.query, self.name, self.tail, timeout)
            except TimeoutError:
                self._failed("timeout", "timeout")
                self.next()
            except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
                self._failed("error", str(exc) or type(exc).__name__)
                self.next()
            else:
                self.judge(data)
        except Exception:
            self._crashed()

    def judge(self, data: bytes) -> None:
        """Accept the answer, or note why not and move on to the next server."""
        group, up = self.group, self.up
        now = group.clock()
        try:
            reply = Reply.from_wire(data, self.question_end, now, group.min_ttl, group.max_ttl)
        except MalformedReply as exc:
            self._failed("error", str(exc) or "malformed answer")
            self.next()
            return
        reply.upstream = up.label
        rcode = reply.rcode
        up.requests[RCODE_NAMES.get(rcode, str(rcode))] += 1
        if rcode == c.SERVFAIL:
            self.attempts.append(f"{up.label}: SERVFAIL")
            self.servfail = reply
            self.next()
        elif rcode == c.REFUSED:
            # A refusal is about this question (a server authoritative for other zones, an ACL), not a
            # sign the server is down: the next server is asked, but this one keeps its place.
            self.attempts.append(f"{up.label}: REFUSED")
            if self.servfail is None:
                self.servfail = reply.as_servfail()
            self.next()
        else:
            up.succeeded(now - self.started)
            self._finish(reply)

    def _finish(self, reply: Reply | None) -> None:
        """Give the answer once, whatever happens after."""
        if not self.finished:
            self.finished = True
            self.done(reply)

    def _crashed(self) -> None:
        """A bug, not a bad answer: logged with its traceback, and the waiters still get SERVFAIL rather
        than waiting for ever (each identical question would join them)."""
        log.exception("error handling the upstream answer for %s", self.qname)
        self._finish(None)

    def _failed(self, kind: str, detail: str) -> None:
        up = self.up
        up.requests[kind] += 1
        up.failed(self.group.clock())
        self.attempts.append(f"{up.label}: {detail}")
