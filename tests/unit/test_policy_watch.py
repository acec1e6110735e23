"""The zones watcher: which changes cause a reload, which do not, and that it keeps going and stops.

Every test runs the real watcher on a real directory with a short interval and a fake reload callback
that records calls; tests await the watcher's scans and reloads, never sleep for longer than an interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest

from sinkdns.policy.holder import PolicyHolder
from sinkdns.policy.watch import ZonesWatcher, included_paths, scan

INTERVAL = 0.02
TIMEOUT = 5.0


class Recorder:
    """A fake reload: counts calls, can be slow or fail, and records how many ran at once."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = fail
        self.running = 0
        self.most_at_once = 0
        self.event = asyncio.Event()

    async def __call__(self) -> str:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            self.calls += 1
            self.event.set()
            if self.fail:
                raise RuntimeError("reload exploded")
            return "success"
        finally:
            self.running -= 1


async def wait_until(probe, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(INTERVAL / 4)


async def scans(watcher: ZonesWatcher, n: int) -> None:
    """Wait for `n` more complete scans."""
    target = watcher.scans + n
    await wait_until(lambda: watcher.scans >= target, f"{n} scans")


async def reloads(recorder: Recorder, n: int) -> None:
    await wait_until(lambda: recorder.calls >= n, f"{n} reload(s), got {recorder.calls}")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def started(path, recorder, **kwargs) -> ZonesWatcher:
    watcher = ZonesWatcher(str(path), recorder, interval=INTERVAL, settle=kwargs.pop("settle", INTERVAL / 4), **kwargs)
    watcher.start()
    await watcher.started()
    return watcher


def same_times(path, like) -> None:
    st = os.stat(like)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=True)


def test_no_change_no_reload(tmp_path):
    (tmp_path / "a.txt").write_text("a.example\n")

    async def main():
        recorder = Recorder()
        watcher = await started(tmp_path, recorder)
        await scans(watcher, 10)
        await watcher.stop()
        assert recorder.calls == 0
        assert watcher.reloads == 0

    run(main())


@pytest.mark.parametrize("change", ["add", "delete", "rewrite-same-size", "grow", "rename-over", "new-name"])
def test_each_kind_of_change_reloads_once(tmp_path, change):
    a = tmp_path / "a.txt"
    a.write_text("a.example\n")
    os.utime(a, ns=(1_000_000_000, 1_000_000_000))

    async def main():
        recorder = Recorder()
        watcher = await started(tmp_path, recorder)
        if change == "add":
            (tmp_path / "b.txt").write_text("b.example\n")
        elif change == "delete":
            a.unlink()
        elif change == "rewrite-same-size":
            a.write_text("c.example\n")  # same size; only the mtime tells
            os.utime(a, ns=(2_000_000_000, 2_000_000_000))
        elif change == "grow":
            with open(a, "a") as f:
                f.write("more.example\n")
            os.utime(a, ns=(1_000_000_000, 1_000_000_000))  # only the size tells
        elif change == "rename-over":
            new = tmp_path / ".a.txt.tmp"
            new.write_text("c.example\n")
            os.utime(new, ns=(1_000_000_000, 1_000_000_000))  # same size and mtime: only the inode tells
            os.replace(new, a)
        elif change == "new-name":
            a.rename(tmp_path / "b.txt")
        await reloads(recorder, 1)
        await scans(watcher, 5)
        await watcher.stop()
        assert recorder.calls == 1, "one change, one reload"

    run(main())


def test_symlinks_target_changes_and_retargeting_are_seen(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    zones = tmp_path / "zones"
    zones.mkdir()
    (store / "v1.txt").write_text("one.example\n")
    (store / "v2.txt").write_text("two.example\n")
    same_times(store / "v2.txt", store / "v1.txt")
    link = zones / "feed.txt"
    link.symlink_to(store / "v1.txt")

    async def main():
        recorder = Recorder()
        watcher = await started(zones, recorder)
        # The target changes through the link: the link itself is untouched.
        (store / "v1.txt").write_text("uno.example\n")
        os.utime(store / "v1.txt", ns=(5_000_000_000, 5_000_000_000))
        await reloads(recorder, 1)
        # The link is swapped for one to another file with the same size and mtime (ConfigMap style).
        same_times(store / "v2.txt", store / "v1.txt")
        tmp_link = zones / ".feed.tmp"
        tmp_link.symlink_to(store / "v2.txt")
        os.replace(tmp_link, link)
        await reloads(recorder, 2)
        # The link now dangles: also a change.
        (store / "v2.txt").unlink()
        await reloads(recorder, 3)
        await scans(watcher, 5)
        await watcher.stop()
        assert recorder.calls == 3

    run(main())


def test_ignored_files_and_subfolders_do_not_reload(tmp_path):
    (tmp_path / "a.txt").write_text("a.example\n")

    async def main():
        recorder = Recorder()
        watcher = await started(tmp_path, recorder)
        for name in ("README.md", "notes.md", ".a.txt.swp", "a.txt~", "a.txt.bak", ".hidden", "README"):
            (tmp_path / name).write_text("x\n")
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "b.txt").write_text("b.example\n")
        (tmp_path / "dirlink").symlink_to(tmp_path / "sub")
        await scans(watcher, 10)
        assert recorder.calls == 0
        (tmp_path / "c.txt").write_text("c.example\n")  # and it still sees a real change after them
        await reloads(recorder, 1)
        await watcher.stop()

    run(main())


def test_vanished_directory_reloads_once_and_again_when_back(tmp_path):
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "a.txt").write_text("a.example\n")

    async def main():
        recorder = Recorder()
        watcher = await started(zones, recorder)
        zones.rename(tmp_path / "gone")
        await reloads(recorder, 1)  # the holder logs the fault and keeps the policy
        await scans(watcher, 10)
        assert recorder.calls == 1, "a directory that stays missing is reported once, not every interval"
        (tmp_path / "gone").rename(zones)
        await reloads(recorder, 2)
        await watcher.stop()

    run(main())


def test_extra_paths_are_watched(tmp_path):
    zones = tmp_path / "zones"
    zones.mkdir()
    outside = tmp_path / "inc" / "part.rpz"
    outside.parent.mkdir()
    outside.write_text("x CNAME .\n")

    async def main():
        recorder = Recorder()
        watcher = await started(zones, recorder, extra_paths=lambda: [str(outside)])
        outside.write_text("y CNAME .\n")
        os.utime(outside, ns=(3_000_000_000, 3_000_000_000))
        await reloads(recorder, 1)
        outside.unlink()
        await reloads(recorder, 2)
        await watcher.stop()

    run(main())


def test_reloads_never_overlap_and_a_failing_reload_does_not_stop_the_watcher(tmp_path, caplog):
    async def main():
        recorder = Recorder(delay=INTERVAL * 3, fail=True)
        watcher = await started(tmp_path, recorder)
        for i in range(3):
            (tmp_path / f"f{i}.txt").write_text("a.example\n")
            await reloads(recorder, i + 1)
        await watcher.stop()
        assert recorder.most_at_once == 1
        assert recorder.calls == 3

    with caplog.at_level(logging.ERROR, "sinkdns.policy"):
        run(main())
    failures = [r for r in caplog.records if "zones watcher" in r.getMessage()]
    assert len(failures) == 3
    assert all(r.exc_info and "reload exploded" in str(r.exc_info[1]) for r in failures)


def test_a_file_still_being_written_is_reloaded_once_it_settles(tmp_path):
    async def main():
        recorder = Recorder()
        watcher = await started(tmp_path, recorder, settle=INTERVAL)
        path = tmp_path / "feed.txt"
        with open(path, "w") as f:
            for i in range(8):  # a slow copy: a new size on every scan
                f.write(f"n{i}.example\n")
                f.flush()
                await scans(watcher, 1)
        await reloads(recorder, 1)
        await scans(watcher, 5)
        final = scan(str(tmp_path))
        await watcher.stop()
        # Settling lasts at most `interval`, so a long copy may cost more than one reload, never one per write;
        # and the last reload saw the finished file.
        assert 1 <= recorder.calls < 8
        assert watcher._last == final

    run(main())


def test_stop_ends_scanning_and_start_again_works(tmp_path):
    async def main():
        recorder = Recorder()
        watcher = await started(tmp_path, recorder)
        task = watcher._task
        await watcher.stop()
        assert task.done()
        done = watcher.scans
        (tmp_path / "a.txt").write_text("a.example\n")
        await asyncio.sleep(INTERVAL * 3)  # a stopped watcher: nothing to await but time
        assert watcher.scans == done and recorder.calls == 0
        watcher.start()
        await watcher.started()
        with pytest.raises(RuntimeError):
            watcher.start()
        (tmp_path / "b.txt").write_text("b.example\n")
        await reloads(recorder, 1)
        await watcher.stop()
        await watcher.stop()  # twice is harmless

    run(main())


def test_baseline_taken_before_the_load_catches_a_change_made_during_it(tmp_path):
    async def main():
        baseline = scan(str(tmp_path))
        (tmp_path / "a.txt").write_text("a.example\n")  # lands while the policy loads
        recorder = Recorder()
        watcher = ZonesWatcher(str(tmp_path), recorder, interval=INTERVAL)
        watcher.start(baseline)
        await reloads(recorder, 1)
        await watcher.stop()

    run(main())


def test_interval_must_be_positive(tmp_path):
    with pytest.raises(ValueError):
        ZonesWatcher(str(tmp_path), Recorder(), interval=0)


def test_scan_of_a_missing_directory_is_none(tmp_path):
    assert scan(str(tmp_path / "nope")) is None
    assert scan(str(tmp_path)) == {}


def test_with_a_real_holder_a_new_file_blocks_after_a_poll(tmp_path):
    (tmp_path / "a.txt").write_text("a.example\n")
    inc_dir = tmp_path / "inc"
    inc_dir.mkdir()
    (inc_dir / "part.rpz").write_text("x.example CNAME .\n")
    (tmp_path / "z.rpz").write_text("$TTL 60\n$ORIGIN rpz.local.\n$INCLUDE inc/part.rpz\n")
    holder = PolicyHolder(str(tmp_path))
    holder.load()
    assert included_paths(holder) == [os.path.realpath(inc_dir / "part.rpz")]

    async def main():
        watcher = ZonesWatcher(str(tmp_path), holder.reload, interval=INTERVAL,
                               extra_paths=lambda: included_paths(holder))
        watcher.start()
        await watcher.started()
        assert holder().match_name("b.example", 0) is None
        (tmp_path / "b.txt").write_text("b.example\n")
        await wait_until(lambda: holder().match_name("b.example", 0) is not None, "b.example to be blocked")
        # A change to an included file in a subfolder reloads too.
        assert holder().match_name("y.example", 0) is None
        (inc_dir / "part.rpz").write_text("x.example CNAME .\ny.example CNAME .\n")
        await wait_until(lambda: holder().match_name("y.example", 0) is not None, "y.example to be blocked")
        await watcher.stop()

    run(main())
    assert included_paths(PolicyHolder(str(tmp_path))) == []
