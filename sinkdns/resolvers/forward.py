"""Last in the chain: sends what nobody else answered upstream, once per distinct question in flight."""

from __future__ import annotations

import asyncio
import logging
import time

from sinkdns.errors import UpstreamError
from sinkdns.model import Outcome, Request, Response, Result
from sinkdns.resolvers.base import Stage
from sinkdns.upstream.group import UpstreamGroup
from sinkdns.wire import build
from sinkdns.wire import constants as c
from sinkdns.wire.reply import Reply

log = logging.getLogger(__name__)


class ForwardStage(Stage):
    """Identical questions in flight share one upstream exchange; each waiter gets its own ID and case.

    `conditional` sends named domains (and everything under them) to their own upstreams.
    """

    name = "forward"

    def __init__(self, default: UpstreamGroup, conditional: dict[str, UpstreamGroup], clock=time.monotonic) -> None:
        super().__init__(None)
        self.default = default
        self.conditional = conditional
        self.clock = clock
        self.inflight: dict[bytes, asyncio.Future] = {}

    def __call__(self, req: Request) -> Result:
        return self._forward(req)

    def group_for(self, qname: str) -> UpstreamGroup:
        name = qname
        while self.conditional:
            group = self.conditional.get(name)
            if group is not None:
                return group
            dot = name.find(".")
            if dot < 0:
                break
            name = name[dot + 1:]
        return self.default

    async def _forward(self, req: Request) -> Response:
        key = req.key
        shared = self.inflight.get(key)
        if shared is not None:
            reply = await asyncio.shield(shared)
        else:
            shared = self.inflight[key] = asyncio.get_running_loop().create_future()
            reply = None
            try:
                reply = await self.group_for(req.qname).ask(req)
            except UpstreamError as exc:
                log.debug("SERVFAIL for %s: %s", req.qname, exc)
            finally:
                del self.inflight[key]
                shared.set_result(reply)
        return self._respond(req, reply)

    def _respond(self, req: Request, reply: Reply | None) -> Response:
        if reply is None:
            return Response(build.answer(req, c.SERVFAIL), Outcome.SERVFAIL, c.SERVFAIL)
        outcome = Outcome.SERVFAIL if reply.rcode == c.SERVFAIL else Outcome.FORWARDED
        return Response(reply.render(req, self.clock()), outcome, reply.rcode, entry=reply)
