"""What both transports share: turn bytes into a Request, run the chain, never let an error escape.

This is the one boundary where an unexpected exception becomes SERVFAIL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Callable

from sinkdns.model import Handler, Outcome, Request, Response
from sinkdns.resolvers.instrument import QueryStats
from sinkdns.wire import build
from sinkdns.wire import constants as c
from sinkdns.wire.parse import parse_query

log = logging.getLogger(__name__)

Reply = Callable[[Request, Response], None]


class Dispatcher:
    """Runs the chain for each query; answers that must wait are counted until sent, so none is orphaned
    and a shutdown can drain them."""

    def __init__(self, chain: Handler, stats: QueryStats, clock=time.monotonic) -> None:
        self.chain = chain
        self.stats = stats
        self.clock = clock
        self.waiting = 0  # queries whose answer is still to come
        self._idle: asyncio.Event | None = None

    def dispatch(self, data: bytes, client: tuple, transport: str, send: Reply) -> bool:
        """Answer `data` through `send`, now or later; False when it was dropped unanswered."""
        req = parse_query(data, client, transport, self.clock())
        if req is None:
            self.stats.dropped(transport)
            return False
        try:
            result = self.chain(req)
        except Exception:
            log.exception("error answering %s", req.qname)
            result = _servfail(req)
        if type(result) is Response:
            send(req, result)
            return True
        self.waiting += 1
        result.finish(partial(self._finish, req, send))
        return True

    def _finish(self, req: Request, send: Reply, res: Response | BaseException) -> None:
        self.waiting -= 1
        if not isinstance(res, Response):
            log.error("error answering %s", req.qname, exc_info=res)
            res = _servfail(req)
        try:
            send(req, res)
        finally:
            if not self.waiting and self._idle is not None:
                self._idle.set()

    async def drain(self, timeout: float) -> None:
        """Wait for queries in flight to be answered, at most `timeout` seconds."""
        if self.waiting:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                pass
            finally:
                self._idle = None


def _servfail(req: Request) -> Response:
    return Response(build.answer(req, c.SERVFAIL), Outcome.SERVFAIL, c.SERVFAIL)
