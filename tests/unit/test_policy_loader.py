import os

import pytest

from sinkdns.policy.loader import customer_id, ignored, load

NOW = 0.0


def write(d, files):
    for name, body in files.items():
        (d / name).write_bytes(body if isinstance(body, bytes) else body.encode())


def blocked(state, name):
    rule = state.index.match_name(name, NOW)
    return None if rule is None else rule.decision.source


@pytest.mark.parametrize("name, skip", [
    ("README", True), ("README.txt", True), ("notes.md", True), (".hidden", True), ("acme.rpz~", True),
    (".acme.rpz.swp", True), ("acme.swp", True), ("acme.bak", True), ("acme.rpz", False), ("acme.txt", False),
])
def test_ignored(name, skip):
    assert ignored(name) is skip


def test_formats_customers_and_ignored_files(tmp_path):
    write(tmp_path, {
        "acme.hosts": "0.0.0.0 acme.example\n", "feed.rpz": "$TTL 60\nfeed.example CNAME .\n",
        "list.txt": "list.example\n", "ads.conf": "address=/ads.example/0.0.0.0\n",
        "adb.txt": "||adb.example^\n", "README.md": "not.parsed\n", "old.bak": "bak.example\n",
        "acme.toml": 'name = "Acme"\n', "solo.toml": 'domains = ["solo.example"]\n',
    })
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.txt").write_text("sub.example\n")
    state = load(str(tmp_path))
    assert state.errors == []
    assert {n: f.format for n, f in state.files.items()} == {
        "acme.hosts": "hosts", "acme.toml": "toml", "adb.txt": "adblock", "ads.conf": "dnsmasq",
        "feed.rpz": "rpz", "list.txt": "domains", "solo.toml": "toml"}
    assert state.index.match_name("acme.example", NOW).action.organisation == "Acme"
    for name in ("feed.example", "list.example", "ads.example", "adb.example", "solo.example"):
        assert blocked(state, name) is not None
    for name in ("not.parsed", "bak.example", "sub.example"):
        assert blocked(state, name) is None
    assert customer_id("acme.hosts") == "acme" and customer_id("plain") == "plain"


@pytest.mark.parametrize("name, body, error", [
    ("bin.txt", b"ads.example\n\x00\x01\x02", "bin.txt:2: binary data"),
    ("bad.rpz", b"$TTL 60\nx.example BOGUS y\n", "bad.rpz:2:"),
    ("bad.toml", b"nope = 1\n", "bad.toml:1: unknown key 'nope'"),
    ("what.txt", b"<html>\n<p>hello there</p>\n", "what.txt: cannot tell the format"),
])
def test_whole_file_errors(tmp_path, name, body, error):
    write(tmp_path, {name: body, "good.txt": "good.example\n"})
    state = load(str(tmp_path))
    assert len(state.errors) == 1 and state.errors[0].startswith(error)
    assert blocked(state, "good.example") == "good.txt:1"


def test_size_limit(tmp_path):
    write(tmp_path, {"big.txt": "a.example\n" * 100})
    state = load(str(tmp_path), size_limit=500)
    assert "over the size limit" in state.errors[0]


def test_symlinks_followed_and_loops_are_errors(tmp_path):
    target = tmp_path / "elsewhere.list"
    target.write_text("linked.example\n")
    zones = tmp_path / "zones"
    zones.mkdir()
    os.symlink(target, zones / "linked.txt")
    os.symlink(zones / "loop.txt", zones / "loop.txt")
    os.symlink(zones / "missing", zones / "dangling.txt")
    state = load(str(zones))
    assert blocked(state, "linked.example") == "linked.txt:1"
    assert sorted(state.errors) == ["dangling.txt: cannot read: No such file or directory", "loop.txt: symlink loop"]


def test_failing_file_keeps_its_last_good_version(tmp_path):
    write(tmp_path, {"a.txt": "old.example\n", "b.txt": "b.example\n"})
    first = load(str(tmp_path))
    write(tmp_path, {"a.txt": b"new.example\n\x00"})
    second = load(str(tmp_path), first)
    assert second.errors == ["a.txt:2: binary data (a NUL byte)"]
    assert second.files["a.txt"].stale
    assert blocked(second, "old.example") == "a.txt:1" and blocked(second, "new.example") is None
    assert second.index.generation == first.index.generation + 1
    write(tmp_path, {"a.txt": "new.example\n"})
    third = load(str(tmp_path), second)
    assert third.errors == [] and blocked(third, "new.example") and not blocked(third, "old.example")


def test_unchanged_files_are_not_parsed_again_and_deleted_files_go(tmp_path):
    write(tmp_path, {"a.txt": "a.example\n", "b.txt": "b.example\n"})
    first = load(str(tmp_path))
    (tmp_path / "b.txt").unlink()
    second = load(str(tmp_path), first)
    assert second.files["a.txt"] is first.files["a.txt"]
    assert blocked(second, "b.example") is None


def test_vanished_directory_keeps_the_whole_policy(tmp_path):
    zones = tmp_path / "zones"
    zones.mkdir()
    write(zones, {"a.txt": "a.example\n"})
    first = load(str(zones))
    (zones / "a.txt").unlink()
    zones.rmdir()
    second = load(str(zones), first)
    assert second.error and "cannot read the zones directory" in second.error
    assert second.index is first.index
    assert load(str(zones)).errors  # at start-up: an error, nothing to keep


def test_included_files_are_not_policies_of_their_own(tmp_path):
    write(tmp_path, {"feed.rpz": "$TTL 60\n$INCLUDE part.inc\n", "part.inc": "inc.example CNAME .\n"})
    state = load(str(tmp_path))
    assert list(state.files) == ["feed.rpz"] and state.errors == []
    assert blocked(state, "inc.example") == "part.inc:1"
    write(tmp_path, {"part.inc": "inc2.example CNAME .\n"})
    os.utime(tmp_path / "part.inc", ns=(1, 1))
    again = load(str(tmp_path), state)
    assert blocked(again, "inc2.example") == "part.inc:1"


def test_metadata_applies_to_every_file_of_the_customer(tmp_path):
    write(tmp_path, {"acme.txt": "acme.example\n", "acme.toml": 'action = "nxdomain"\nreason = "why"\nmode = "dry-run"\n'})
    rule = load(str(tmp_path)).index.match_name("acme.example", NOW)
    assert (rule.decision.action, rule.kind, rule.decision.reason) == ("dry-run", "nxdomain", "why")
