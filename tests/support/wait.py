"""Bounded waiting for something to become true: readiness is awaited, never slept for."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def until(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds saying `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
