"""Watch the zones directory and reload the policy when a file in it changes.

Polling, not inotify: it works the same on every file system (NFS, bind mounts, config-management
renames, Kubernetes ConfigMap symlink swaps) and costs one `os.scandir` plus one `stat` per file every
`interval` seconds, run in an executor thread so a slow disk never stalls the event loop. A snapshot
is each file's name, size, mtime and inode, of the file itself (`lstat`) and of what a symlink points to
(`stat`), so an atomic rename, a rewrite in place and a retargeted symlink are all seen. Files the loader
never reads (README, hidden files, editor leftovers, see `loader.ignored`) are not watched, so an
editor's swap file does not cause reloads.

A change is reloaded once the directory has settled: the watcher scans again after `settle` seconds and
waits until two scans agree, so a list still being copied in is not loaded half-written (give up waiting
after `interval`: a file that never stops changing is still reloaded). The `reload` callback (the
PolicyHolder's) is awaited before the next scan, so reloads never pile up; SIGHUP keeps working beside it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat as stat_module
from typing import Awaitable, Callable, Iterable

from sinkdns.policy.loader import ignored

log = logging.getLogger("sinkdns.policy")

# name -> (kind, size, mtime_ns, inode) of the entry itself and, for a symlink, of its target.
Entry = tuple[tuple[int, int, int, int], tuple[int, int, int, int] | None]
Snapshot = dict[str, Entry] | None  # None: the directory is missing or unreadable

_MISSING = (-1, -1, -1, -1)
_SCAN = object()  # start()'s default: take the baseline by scanning


def _facts(st: os.stat_result) -> tuple[int, int, int, int]:
    return (stat_module.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, st.st_ino)


def scan(zones_dir: str, extra_paths: Iterable[str] = ()) -> Snapshot:
    """What the watcher compares: every file the loader would read, and `extra_paths` (e.g. $INCLUDEs)."""
    found: dict[str, Entry] = {}
    try:
        with os.scandir(zones_dir) as entries:
            for entry in entries:
                if ignored(entry.name):
                    continue
                try:
                    own = _facts(entry.stat(follow_symlinks=False))
                except OSError:
                    continue  # removed between readdir and stat: the next scan sees it gone
                target = None
                if stat_module.S_ISLNK(own[0]):
                    try:
                        target = _facts(entry.stat(follow_symlinks=True))
                    except OSError:
                        target = _MISSING  # dangling, or a loop: still a state worth noticing
                    if target is not _MISSING and stat_module.S_ISDIR(target[0]):
                        continue
                elif stat_module.S_ISDIR(own[0]):
                    continue  # subfolders are not read
                found[entry.name] = (own, target)
    except OSError:
        return None
    for path in extra_paths:
        try:
            found["\0" + path] = (_facts(os.stat(path)), None)  # NUL: cannot clash with a file name
        except OSError:
            found["\0" + path] = (_MISSING, None)
    return found


class ZonesWatcher:
    """Polls `zones_dir` every `interval` seconds and awaits `reload()` after a change.

    `extra_paths` (a callable, asked at every scan) names more files to watch, such as files outside the
    directory's top level that RPZ zones $INCLUDE; `included_paths(holder)` gives those of a PolicyHolder.
    """

    def __init__(
        self,
        zones_dir: str,
        reload: Callable[[], Awaitable[object]],
        interval: float = 2.0,
        settle: float = 0.25,
        extra_paths: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive (0 means: do not create a watcher)")
        self.zones_dir = zones_dir
        self.reload = reload
        self.interval = interval
        self.settle = min(settle, interval)
        self.extra_paths = extra_paths
        self.reloads = 0  # reloads this watcher asked for
        self.scans = 0
        self._task: asyncio.Task | None = None
        self._last: Snapshot = None
        self._ready: asyncio.Event | None = None  # made by start(), in the running loop

    async def _scan(self) -> Snapshot:
        extra = list(self.extra_paths())
        snapshot = await asyncio.get_running_loop().run_in_executor(None, scan, self.zones_dir, extra)
        self.scans += 1
        return snapshot

    def start(self, baseline: Snapshot | object = _SCAN) -> asyncio.Task:
        """Start polling. By default the first scan is the baseline (no reload for it); pass `scan(dir)`
        taken before the policy was loaded as `baseline` to also catch a change made while it loaded."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("already watching")
        self._ready = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(baseline), name="zones-watcher")
        return self._task

    async def started(self) -> None:
        """Wait until the baseline scan is taken (tests; callers need not wait)."""
        assert self._ready is not None, "start() first"
        await self._ready.wait()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def _run(self, baseline: Snapshot | object) -> None:
        self._last = await self._scan() if baseline is _SCAN else baseline  # type: ignore[assignment]
        self._ready.set()
        while True:
            await asyncio.sleep(self.interval)
            try:
                current = await self._scan()
                if current == self._last:
                    continue
                current = await self._settled(current)
                self._last = current
                self.reloads += 1
                await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception:  # a watcher that dies silently is worse than one that logs and goes on
                log.exception("zones watcher: reload of %s failed", self.zones_dir)

    async def _settled(self, current: Snapshot) -> Snapshot:
        """Scan again every `settle` seconds until two scans agree, for at most `interval` seconds."""
        if self.settle <= 0:
            return current
        waited = 0.0
        while waited < self.interval:
            await asyncio.sleep(self.settle)
            waited += self.settle
            again = await self._scan()
            if again == current:
                return again
            current = again
        return current


def included_paths(holder) -> list[str]:
    """Files that RPZ zones of a PolicyHolder's current state $INCLUDE (absolute paths)."""
    state = holder.state
    if state is None:
        return []
    out = []
    for file in state.files.values():
        if file.rules is not None:
            out.extend(file.rules.includes)
    return out
