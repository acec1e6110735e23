"""Hand the memory a policy load freed back to the system.

A reload frees the whole previous index, and every load frees its parse's intermediates: a hundred
megabytes and more for a million rules. glibc keeps freed memory for reuse, much of it in the arena of
the executor thread the reload ran in, which the event loop's thread does not allocate from: without a
trim the resident size stays near the reload's peak and creeps up from one reload to the next. Where
the C library has no `malloc_trim` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Return free heap memory of every malloc arena to the system (glibc's `malloc_trim(0)`)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
