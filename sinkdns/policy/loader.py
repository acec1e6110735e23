"""Load a zones directory into a PolicyIndex, keeping each file's last good version when a new one fails.

Which files count: every regular file (or symlink to one) directly in the directory, except `*.md`,
`README*`, hidden files, `*~`, `*.swp`, `*.bak`, and files another RPZ file $INCLUDEs. The file stem is
the customer id; `<id>.toml` holds that customer's metadata. `.rpz`/`.zone` are RPZ, `.hosts` hosts,
anything else is sniffed. A load is given the previous `LoadState`; files whose size, mtime and inode
did not change are not parsed again.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field, replace
from typing import Iterator

from sinkdns.policy.customers import Customer, Defaults, read_customer
from sinkdns.policy.files import SIZE_LIMIT, read_lines
from sinkdns.policy.index import PolicyIndex, build_index
from sinkdns.policy.lists import PARSERS
from sinkdns.policy.rpz import RpzReader
from sinkdns.policy.sniff import SNIFF_LINES, sniff
from sinkdns.policy.source import PolicyFileError, SourceRules

RPZ_SUFFIXES = (".rpz", ".zone")
_IGNORED_SUFFIXES = (".md", "~", ".swp", ".bak")


def ignored(name: str) -> bool:
    """Files in zones/ that are never parsed: documentation, hidden files and editor leftovers."""
    return name.startswith(".") or name.startswith("README") or name.endswith(_IGNORED_SUFFIXES)


def customer_id(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


Signature = tuple[tuple[str, int, int, int], ...]  # (path, size, mtime_ns, inode) of a file and its includes


@dataclass(frozen=True)
class FileState:
    """One file's outcome. `rules`/`customer` are its last good parse, possibly older than `error`."""

    name: str
    format: str
    signature: Signature
    rules: SourceRules | None = None
    customer: Customer | None = None
    error: str | None = None  # file:line: message of the current version, None when it loaded

    @property
    def stale(self) -> bool:
        return self.error is not None and (self.rules is not None or self.customer is not None)


@dataclass(frozen=True)
class LoadState:
    """Everything one load produced; the next load starts from it."""

    zones_dir: str
    files: dict[str, FileState] = field(default_factory=dict)
    index: PolicyIndex = field(default_factory=PolicyIndex.empty)
    error: str | None = None  # the directory itself could not be read: everything is the previous policy

    @property
    def errors(self) -> list[str]:
        found = [self.error] if self.error else []
        return found + [f.error for f in self.files.values() if f.error]

    @property
    def warning_count(self) -> int:
        return sum(f.rules.warning_count for f in self.files.values() if f.rules is not None and f.error is None)


def load(zones_dir: str, previous: LoadState | None = None, defaults: Defaults = Defaults(),
         size_limit: int = SIZE_LIMIT) -> LoadState:
    """Load `zones_dir`. Never raises for bad content: errors are in the returned state's `errors`."""
    previous_files = previous.files if previous is not None else {}
    generation = previous.index.generation + 1 if previous is not None else 1
    try:
        names = sorted(n for n in os.listdir(zones_dir) if not ignored(n))
    except OSError as exc:
        message = f"{zones_dir}: cannot read the zones directory: {exc.strerror}"
        if previous is None:
            return LoadState(zones_dir, error=message)
        return replace(previous, error=message)
    names = [n for n in names if not os.path.isdir(os.path.join(zones_dir, n))]
    files: dict[str, FileState] = {}
    included: set[str] = set()
    # RPZ files first, so files they $INCLUDE are known before they would be read as policies of their own.
    for name in sorted(names, key=lambda n: not n.endswith(RPZ_SUFFIXES)):
        path = os.path.join(zones_dir, name)
        if os.path.realpath(path) in included:
            continue
        state = _load_file(zones_dir, name, previous_files.get(name), size_limit)
        files[name] = state
        if state.rules is not None:
            included.update(state.rules.includes)
    files = {name: files[name] for name in sorted(files)}
    index = build_index(_sources(files, defaults), generation)
    return LoadState(zones_dir, files, index)


def _load_file(zones_dir: str, name: str, old: FileState | None, size_limit: int) -> FileState:
    path = os.path.join(zones_dir, name)
    signature = _signature([path] + list(old.rules.includes if old and old.rules else ()))
    if old is not None and old.signature == signature and old.error is None:
        return old
    fmt = _format(name)
    try:
        if fmt == "toml":
            customer, rules = read_customer(path, name, customer_id(name))
            return FileState(name, fmt, signature, rules, customer)
        if fmt == "rpz":
            rules = RpzReader(zones_dir, lambda p: read_lines(p, os.path.relpath(p, zones_dir), size_limit)).read(path, name)
            return FileState(name, fmt, _signature([path, *rules.includes]), rules)
        lines = read_lines(path, name, size_limit)
        if fmt == "sniff":
            head = list(itertools.islice(lines, SNIFF_LINES * 10))
            fmt = sniff(head) or ""
            if not fmt:
                raise PolicyFileError(name, 0, "cannot tell the format (not hosts, domains, adblock or dnsmasq)")
            lines = itertools.chain(head, lines)
        return FileState(name, fmt, signature, PARSERS[fmt](lines, name))
    except PolicyFileError as exc:
        if old is None:
            return FileState(name, fmt, signature, error=str(exc))
        return replace(old, signature=signature, error=str(exc))


def _format(name: str) -> str:
    if name.endswith(RPZ_SUFFIXES):
        return "rpz"
    if name.endswith(".hosts"):
        return "hosts"
    if name.endswith(".toml"):
        return "toml"
    return "sniff"


def _signature(paths: list[str]) -> Signature:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((path, st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            out.append((path, -1, -1, -1))
    return tuple(out)


def _sources(files: dict[str, FileState], defaults: Defaults) -> Iterator[tuple[list, SourceRules]]:
    """Each file's rules with customer metadata applied, in file-name order (the precedence order)."""
    customers = {
        state.customer.id: state.customer for state in files.values() if state.customer is not None
    }
    for rank, (name, state) in enumerate(files.items()):
        if state.rules is None:
            continue
        cid = customer_id(name)
        customer = customers.get(cid) or Customer(cid)
        actions = [customer.action_for(spec.kind, defaults, name, spec.file, rank, spec.local)
                   for spec in state.rules.actions]
        yield actions, state.rules

