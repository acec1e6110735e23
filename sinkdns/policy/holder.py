"""The current policy, and reloads that never lose a query.

A reload parses changed files in an executor thread and installs the new index with one attribute
assignment; queries in flight keep the index they already read. Overlapping reload requests coalesce:
a request made while a load runs is served by the next load, never by a second concurrent one. The
garbage collector stays off while a load builds and the new index is frozen once installed
(collector.py), so no collection walks millions of policy objects while the event loop waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Callable

from sinkdns.policy.collector import collection_paused, settle_collector
from sinkdns.policy.customers import Defaults
from sinkdns.policy.files import SIZE_LIMIT
from sinkdns.policy.index import PolicyIndex
from sinkdns.policy.loader import LoadState, load
from sinkdns.policy.memory import release_freed_memory

SUCCESS = "success"
PARTIAL = "partial"
FAILURE = "failure"
FREE_SLICE = 20_000  # names freed at a time after a reload: well under a millisecond each

log = logging.getLogger("sinkdns.policy")


class PolicyHolder:
    """Owns the current PolicyIndex. Call it (no arguments) for the index in force."""

    def __init__(
        self,
        zones_dir: str,
        defaults: Defaults = Defaults(),
        clock: Callable[[], float] = time.time,
        size_limit: int = SIZE_LIMIT,
        on_load: Callable[[str, LoadState], None] | None = None,
    ) -> None:
        self.zones_dir = zones_dir
        self.defaults = defaults
        self.clock = clock
        self.size_limit = size_limit
        self.on_load = on_load
        self.index = PolicyIndex.empty()
        self.state: LoadState | None = None
        self.reloads: Counter[str] = Counter({SUCCESS: 0, PARTIAL: 0, FAILURE: 0})
        self.file_errors: Counter[str] = Counter()  # file name -> failed loads of that file
        self.last_success: float | None = None  # wall time of the last load without any error
        self._lock = asyncio.Lock()
        self._requested = 0
        self._completed = 0
        self._last_result = SUCCESS

    def __call__(self) -> PolicyIndex:
        return self.index

    def load(self) -> str:
        """Load synchronously (start-up, `sinkdns check`); returns success, partial or failure."""
        with collection_paused():
            result = self._install(load(self.zones_dir, self.state, self.defaults, self.size_limit))
        release_freed_memory()
        return result

    async def reload(self) -> str:
        """Reload off the event loop (SIGHUP, file watcher); returns success, partial or failure."""
        self._requested += 1
        ticket = self._requested
        async with self._lock:
            if self._completed >= ticket:
                return self._last_result
            target = self._requested
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            with collection_paused():  # from the first parsed line until the new index is frozen
                state = await loop.run_in_executor(None, load, self.zones_dir, self.state, self.defaults,
                                                   self.size_limit)
                self._completed = target
                retired = _retired_names(self.state, state)
                result = self._install(state)  # frees the old index, unless a query in flight still holds it
                await loop.run_in_executor(None, _settle, retired)
            log.info("policy reloaded", extra={"result": result, "generation": self.index.generation,
                                               "rules": len(self.index), "seconds": round(time.perf_counter() - started, 3)})
            return result

    def _install(self, state: LoadState) -> str:
        previous = self.state.files if self.state is not None else {}
        self.state = state
        self.index = state.index  # the swap: one assignment
        if state.error:
            log.error("%s; the last good policy stays in force", state.error)
            result = FAILURE
        else:
            result = PARTIAL if any(f.error for f in state.files.values()) else SUCCESS
        for name, file in state.files.items():
            if file.error:
                self.file_errors[name] += 1
                kept = "its last good version stays in force" if file.stale else "it is not in force"
                log.error("%s (%s)", file.error, kept)
            elif file.rules is not None and file.rules.warnings and previous.get(name) is not file:
                log.warning("%s: %d lines skipped, %d unsupported; first: %s", name, file.rules.skipped,
                            file.rules.unsupported, file.rules.warnings[0])
        self.reloads[result] += 1
        if result == SUCCESS:
            self.last_success = self.clock()
        self._last_result = result
        if self.on_load is not None:
            self.on_load(result, state)
        return result

    def degraded(self) -> str | None:
        """Text for /healthz when some policy is not as written (a file or the directory failed), else None."""
        if self.state is None:
            return "policy not loaded yet"
        errors = self.state.errors
        if not errors:
            return None
        return f"policy degraded: {len(errors)} error(s): " + "; ".join(errors)


def _retired_names(old: LoadState | None, new: LoadState) -> list[list[str]]:
    """The name lists of the parses `new` no longer holds (files changed or gone): only the old state
    refers to them, so they can be emptied while it is freed."""
    if old is None:
        return []
    kept = {id(f.rules) for f in new.files.values() if f.rules is not None}
    return [names for f in old.files.values() if f.rules is not None and id(f.rules) not in kept
            for names in (f.rules.suffix_names, f.rules.exact_names, f.rules.wild_names) if names]


def _settle(retired: list[list[str]]) -> None:
    """After a reload: the old names freed, the new index frozen out of the collector, memory given back.

    Freeing a million names at once holds the GIL for tens of milliseconds, during which the event
    loop answers nothing; a slice at a time, it can take the GIL between slices.
    """
    for names in retired:
        while names:
            del names[-FREE_SLICE:]
    settle_collector()
    release_freed_memory()
