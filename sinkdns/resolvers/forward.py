"""Last in the chain: sends what nobody else answered upstream, once per distinct question in flight.

Questions in flight are capped: beyond the cap a query is answered SERVFAIL at once, so a flood of
distinct names costs a bounded number of sockets and timers instead of growing until the
process falls over (Unbound's num-queries-per-thread, BIND's recursive-clients).
"""

from __future__ import annotations

import time
from functools import partial

from sinkdns.model import Outcome, Pending, Request, Response, Result
from sinkdns.resolvers.base import Stage
from sinkdns.resolvers.rebind import RebindFilter
from sinkdns.upstream.group import UpstreamGroup
from sinkdns.wire import build
from sinkdns.wire import constants as c
from sinkdns.wire.reply import Reply


class ForwardStage(Stage):
    """Identical questions in flight share one upstream exchange; each waiter gets its own ID and case.

    `conditional` sends named domains (and everything under them) to their own upstreams. At most
    `max_inflight` distinct questions wait upstream at once; `shed` counts the queries refused a slot.
    `rebind`, when given, guards the default upstreams' answers (see RebindFilter); answers from a
    conditional domain's servers are the operator's own and may hold private addresses.
    """

    name = "forward"

    def __init__(
        self,
        default: UpstreamGroup,
        conditional: dict[str, UpstreamGroup],
        clock=time.monotonic,
        max_inflight: int = 1000,
        rebind: RebindFilter | None = None,
    ) -> None:
        super().__init__(None)
        self.default = default
        self.conditional = conditional
        self.clock = clock
        self.max_inflight = max_inflight
        self.rebind = rebind
        self.inflight: dict[bytes, list[tuple[Request, Pending]]] = {}  # key -> waiters
        self.shed = 0

    def __call__(self, req: Request) -> Result:
        key = req.key
        pending = Pending()
        waiters = self.inflight.get(key)
        if waiters is not None:
            waiters.append((req, pending))
            return pending
        if len(self.inflight) >= self.max_inflight:
            self.shed += 1
            return Response(build.answer(req, c.SERVFAIL), Outcome.SERVFAIL, c.SERVFAIL)
        # Registered before asking: the group may answer (all servers failing at once) before ask returns.
        self.inflight[key] = [(req, pending)]
        group = self.group_for(req.qname)
        group.ask(req, partial(self._answered, key, group))
        return pending

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

    def _answered(self, key: bytes, group: UpstreamGroup, reply: Reply | None) -> None:
        """Every waiter on the question gets the answer, in its own ID and letter case."""
        waiters = self.inflight.pop(key)
        if reply is not None and group is self.default and self.rebind is not None and self.rebind.rejects(waiters[0][0].qname, reply):
            reply = _REBIND
        for req, pending in waiters:
            pending.settle(self._respond(req, reply))

    def _respond(self, req: Request, reply: Reply | None) -> Response:
        if reply is None:
            return Response(build.answer(req, c.SERVFAIL), Outcome.SERVFAIL, c.SERVFAIL)
        if reply is _REBIND:
            # NODATA, and not cached (no entry): the next asker is judged afresh.
            return Response(build.answer(req), Outcome.BLOCKED)
        outcome = Outcome.SERVFAIL if reply.rcode == c.SERVFAIL else Outcome.FORWARDED
        return Response(reply.render(req, self.clock()), outcome, reply.rcode, entry=reply)


_REBIND = Reply()  # marks an answer RebindFilter rejected, for every waiter on the same question
