"""Policy in the chain: block what the index matches, pass the rest, and judge what comes back.

Order inside one query follows RPZ: client-IP triggers, then the query name, then (on the answer from
the next stage, forwarded or cached) every CNAME target and every address against name and rpz-ip
triggers. An allow ends policy for the query. A blocked answer is returned directly, with no coroutine.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from typing import Callable

from sinkdns.config import BlockPageConfig, PolicyConfig
from sinkdns.model import Handler, Request, Response, Result
from sinkdns.policy.answer import BlockAnswers
from sinkdns.policy.index import PolicyIndex
from sinkdns.policy.rule import ALLOW, TCP_ONLY, Rule
from sinkdns.resolvers.base import Stage, then


class PolicyStage(Stage):
    """Answers blocked queries from the current PolicyIndex; everything else goes to `next`."""

    name = "policy"

    def __init__(
        self,
        next: Handler,
        policy: Callable[[], PolicyIndex],
        config: PolicyConfig,
        blockpage: BlockPageConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(next)
        self.policy = policy  # a PolicyHolder, or any zero-argument callable returning the index
        self.clock = clock  # wall-clock seconds: `until` is a moment in real time
        self.configure(config, blockpage)

    def configure(self, config: PolicyConfig, blockpage: BlockPageConfig) -> None:
        """Answer with these settings from the next query on (a reload of the config file)."""
        self.answers = BlockAnswers(config, blockpage)
        self.canaries = frozenset(config.canaries)  # names browsers probe before bypassing this resolver

    def __call__(self, req: Request) -> Result:
        qname = req.qname
        if qname in self.canaries:
            return self.answers.canary(req)
        index = self.policy()
        now = self.clock()
        rule = index.match_client(req.client[0], now) if index.has_client_rules else None
        by_name = rule is None
        if by_name:
            rule = index.match_name(qname, now)
        if rule is not None:
            if rule.action.kind == ALLOW:
                return then(self.next(req), partial(_tag, rule))
            if self._enforced(rule, req):
                if by_name:
                    trigger = rule.decision.rule
                    owner_labels = trigger.count(".") + (0 if trigger[:2] == "*." else 1)
                else:
                    owner_labels = qname.count(".") + 1 if qname else 0
                return self.answers.respond(req, rule, owner_labels)
            if not rule.action.dry_run:
                rule = None  # tcp-only over TCP: answered as if not blocked
        if not index.has_name_rules and not index.has_response_ip_rules:
            return self.next(req) if rule is None else then(self.next(req), partial(_tag, rule))
        return then(self.next(req), partial(self._check_answer, req, index, now, rule))

    @staticmethod
    def _enforced(rule: Rule, req: Request) -> bool:
        """False for dry-run rules and for tcp-only over TCP: both answer as if not blocked."""
        action = rule.action
        return not action.dry_run and not (action.kind == TCP_ONLY and req.transport == "tcp")

    def _check_answer(self, req: Request, index: PolicyIndex, now: float, seen: Rule | None, resp: Response) -> Response:
        """Deep inspection: a CNAME target or an address of the answer that policy blocks blocks the query."""
        entry = resp.entry
        if entry is not None:
            names = getattr(entry, "names", ())
            found_rules = [index.match_name(name, now) for name in names] if names else []
            addresses = getattr(entry, "addresses", ()) if index.has_response_ip_rules else ()
            if addresses:
                found_rules += [index.match_response_ip(address, now) for address in addresses]
            for found in found_rules:
                if found is None or found.action.kind == ALLOW:
                    continue
                if self._enforced(found, req):
                    return self.answers.respond(req, found, req.qname.count(".") + 1 if req.qname else 0)
                if found.action.dry_run:
                    seen = seen or found
        return resp if seen is None else _tag(seen, resp)

def _tag(rule: Rule, resp: Response) -> Response:
    """The response as `next` gave it, carrying the decision that let it through (allow, dry-run)."""
    return replace(resp, decision=rule.decision)
