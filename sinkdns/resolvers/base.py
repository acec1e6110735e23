"""The one contract every stage follows.

A stage is called with a Request and returns a Response, or an awaitable of one when it must wait
(only the upstream does). Answers that need no waiting (blocked, cached, local) therefore leave the
UDP callback without creating a task; `then` lets a stage post-process either kind the same way.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from sinkdns.model import Handler, Request, Response, Result


class Stage:
    """A link in the chain; `next` is the stage after it."""

    name = "stage"

    def __init__(self, next: Handler) -> None:
        self.next = next

    def __call__(self, req: Request) -> Result:
        raise NotImplementedError


def then(result: Result, fn: Callable[[Response], Response]) -> Result:
    """Apply `fn` to a response now, or once it arrives."""
    if type(result) is Response:
        return fn(result)
    return _then(result, fn)


async def _then(pending: Awaitable[Response], fn: Callable[[Response], Response]) -> Response:
    return fn(await pending)
