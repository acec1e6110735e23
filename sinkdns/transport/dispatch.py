"""What both transports share: turn bytes into a Request, run the chain, never let an error escape.

This is the one boundary where an unexpected exception becomes SERVFAIL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from sinkdns.model import Handler, Outcome, Request, Response
from sinkdns.resolvers.instrument import QueryStats
from sinkdns.wire import build
from sinkdns.wire import constants as c
from sinkdns.wire.parse import parse_query

log = logging.getLogger(__name__)

Reply = Callable[[Request, Response], None]


class Dispatcher:
    """Runs the chain for each query; answers that need waiting run as tracked tasks (never orphaned)."""

    def __init__(self, chain: Handler, stats: QueryStats, clock=time.monotonic) -> None:
        self.chain = chain
        self.stats = stats
        self.clock = clock
        self.tasks: set[asyncio.Task] = set()

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
        task = asyncio.ensure_future(self._finish(req, result, send))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _finish(self, req: Request, pending, send: Reply) -> None:
        try:
            res = await pending
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("error answering %s", req.qname)
            res = _servfail(req)
        send(req, res)

    async def drain(self, timeout: float) -> None:
        """Wait for queries in flight to be answered, at most `timeout` seconds."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)


def _servfail(req: Request) -> Response:
    return Response(build.answer(req, c.SERVFAIL), Outcome.SERVFAIL, c.SERVFAIL)
