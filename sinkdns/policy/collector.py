"""Keep the garbage collector's pauses out of answer latency, at start-up and across policy reloads.

A loaded policy is a few huge containers (a million-entry dict and name lists) that live until the
next reload and hold no reference cycles: reference counting frees a replaced one, and the cycle
collector has nothing to find in it, yet every collection that reaches it walks it while holding the
GIL, stopping the event loop. So a policy is built with automatic collection off, then frozen
(`gc.freeze`) with everything else alive at that moment; frozen objects are still freed by reference
counting when a later reload drops them. Each settle collects first, so no garbage cycle is frozen.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator

GC_THRESHOLD = 50_000  # allocations between collections of the youngest generation (Python's default: 700)

_lock = threading.Lock()
_paused = 0  # builds in progress; automatic collection is back on when the last one ends


@contextmanager
def collection_paused() -> Iterator[None]:
    """No automatic collection while a policy is built (any thread): each one would walk the half-built
    index again. Explicit `gc.collect()` calls still work."""
    global _paused
    with _lock:
        _paused += 1
        gc.disable()
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if not _paused:
                gc.enable()


def settle_collector() -> None:
    """Collect, then freeze everything alive (the policy in force above all) so no later collection
    walks it; the youngest generation is collected less often, because a busy resolver allocates
    short-lived objects by the hundred thousand a second and rarely makes cycles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
