import asyncio
import logging

from sinkdns.policy.holder import FAILURE, PARTIAL, SUCCESS, PolicyHolder


def test_load_and_degraded(tmp_path):
    (tmp_path / "a.txt").write_text("a.example\n")
    holder = PolicyHolder(str(tmp_path), clock=lambda: 42.0)
    assert holder.degraded() == "policy not loaded yet"
    assert holder.load() == SUCCESS
    assert holder().match_name("a.example", 0) is not None
    assert holder.degraded() is None and holder.last_success == 42.0


def test_reload_results_counters_and_errors(tmp_path, caplog):
    (tmp_path / "a.txt").write_text("a.example\n")
    holder = PolicyHolder(str(tmp_path))
    holder.load()
    (tmp_path / "a.txt").write_bytes(b"\x00")
    with caplog.at_level(logging.ERROR, "sinkdns.policy"):
        assert asyncio.run(holder.reload()) == PARTIAL
    assert [r.getMessage() for r in caplog.records] == [
        "a.txt:1: binary data (a NUL byte) (its last good version stays in force)"]
    assert holder().match_name("a.example", 0) is not None
    assert holder.degraded() == "policy degraded: 1 error(s): a.txt:1: binary data (a NUL byte)"
    assert holder.file_errors == {"a.txt": 1}
    (tmp_path / "a.txt").unlink()
    tmp_path.rmdir()
    assert asyncio.run(holder.reload()) == FAILURE
    assert holder().match_name("a.example", 0) is not None
    assert holder.reloads == {SUCCESS: 1, PARTIAL: 1, FAILURE: 1}


def test_overlapping_reloads_coalesce(tmp_path):
    (tmp_path / "a.txt").write_text("a.example\n")
    seen = []
    holder = PolicyHolder(str(tmp_path), on_load=lambda result, state: seen.append(state.index.generation))

    async def main():
        first = asyncio.ensure_future(holder.reload())
        await asyncio.sleep(0)
        rest = [asyncio.ensure_future(holder.reload()) for _ in range(5)]
        return await asyncio.gather(first, *rest)

    assert asyncio.run(main()) == [SUCCESS] * 6
    assert seen == [1, 2]  # one load in flight, one more for everything asked meanwhile


def test_reload_frees_only_the_replaced_parses(tmp_path):
    (tmp_path / "a.txt").write_text("a.example\n")
    (tmp_path / "b.txt").write_text("b.example\n")
    holder = PolicyHolder(str(tmp_path))
    holder.load()
    replaced = holder.state.files["a.txt"].rules
    kept = holder.state.files["b.txt"].rules
    (tmp_path / "a.txt").write_text("other.example\n")
    assert asyncio.run(holder.reload()) == SUCCESS
    assert replaced.suffix_names == []  # emptied a slice at a time after the swap
    assert holder.state.files["b.txt"].rules is kept and kept.suffix_names == ["b.example"]
    assert holder().match_name("b.example", 0) is not None and holder().match_name("other.example", 0) is not None
    assert holder().match_name("a.example", 0) is None
