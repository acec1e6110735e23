"""The one contract every stage follows.

A stage is called with a Request and returns a Response, or a Pending one when it must wait (only the
upstream does). Answers that need no waiting (blocked, cached, local) leave the UDP callback at once;
a miss is carried by one Pending object whose steps run when the upstream's answer arrives, with no
Task and no coroutine. `then` lets a stage post-process either kind the same way.
"""

from __future__ import annotations

from sinkdns.model import Handler, Request, Response, Result, Step


class Stage:
    """A link in the chain; `next` is the stage after it."""

    name = "stage"

    def __init__(self, next: Handler) -> None:
        self.next = next

    def __call__(self, req: Request) -> Result:
        raise NotImplementedError


def then(result: Result, fn: Step) -> Result:
    """Apply `fn` to a response now, or once it arrives."""
    if type(result) is Response:
        return fn(result)
    return result.then(fn)
