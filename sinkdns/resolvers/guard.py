"""Answers what must not go further: unreadable queries, other opcodes, other classes, zone transfers."""

from __future__ import annotations

from sinkdns.model import Outcome, Request, Response, Result
from sinkdns.resolvers.base import Stage
from sinkdns.wire import build
from sinkdns.wire import constants as c

_PROBLEM_OUTCOMES = {c.FORMERR: Outcome.FORMERR, c.BADVERS: Outcome.FORMERR, c.NOTIMP: Outcome.NOTIMP}


class GuardStage(Stage):
    name = "guard"

    def __call__(self, req: Request) -> Result:
        problem = req.problem
        if problem:
            return Response(build.answer(req, problem), _PROBLEM_OUTCOMES[problem], problem)
        # CHAOS (version.bind and friends) is refused too: sinkdns does not reveal what it runs.
        if req.qclass != c.CLASS_IN or req.qtype == c.TYPE_AXFR or req.qtype == c.TYPE_IXFR:
            return Response(build.answer(req, c.REFUSED), Outcome.REFUSED, c.REFUSED)
        return self.next(req)
