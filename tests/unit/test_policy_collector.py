import asyncio
import gc
import weakref

import pytest

import sinkdns.policy.holder as holder_module
from sinkdns.policy.collector import GC_THRESHOLD, collection_paused, settle_collector
from sinkdns.policy.holder import PolicyHolder


@pytest.fixture(autouse=True)
def collector_restored():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.enable()


def test_paused_until_the_last_build_ends():
    first, second = collection_paused(), collection_paused()
    first.__enter__()
    second.__enter__()
    assert not gc.isenabled()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the other build still runs
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_paused_ends_on_an_error():
    with pytest.raises(ValueError), collection_paused():
        raise ValueError
    assert gc.isenabled()


class Node:
    pass


def test_settle_freezes_what_lives_and_collects_cycles_first():
    alive = Node()
    cycle = Node()
    cycle.me = cycle
    gone = weakref.ref(cycle)
    del cycle
    settle_collector()
    assert gone() is None  # collected, not frozen
    assert not any(o is alive for o in gc.get_objects())  # frozen: no collection walks it
    assert gc.get_threshold()[0] == GC_THRESHOLD
    freed = weakref.ref(alive)
    del alive
    assert freed() is None  # reference counting still frees a frozen object


def test_reload_builds_without_collections_and_freezes_the_new_index(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("a.example\n")
    holder = PolicyHolder(str(tmp_path))
    holder.load()
    enabled_while_loading = []
    real_load = holder_module.load

    def watched_load(*args):
        enabled_while_loading.append(gc.isenabled())
        return real_load(*args)

    monkeypatch.setattr(holder_module, "load", watched_load)
    (tmp_path / "a.txt").write_text("b.example\n")
    asyncio.run(holder.reload())
    assert enabled_while_loading == [False] and gc.isenabled()
    assert not any(o is holder.index for o in gc.get_objects())
    assert holder().match_name("b.example", 0) is not None
