"""One entry point under atheris (libFuzzer) in this process; tests/fuzz/run.py starts one per entry.

    python -m tests.fuzz.target ENTRY [libFuzzer flags and corpus directories]

libFuzzer mutates bytes in C and steers by the branches it reaches in sinkdns (instrumented at import),
some twenty times cheaper per input than hypothesis's generation, which is what makes millions of inputs
practical. The checks are those of tests/fuzz/properties.py; libFuzzer ends the process when done.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Callable

import atheris

with atheris.instrument_imports(include=["sinkdns"]):
    from tests.fuzz.properties import BadGroup, FakeGroup, build_app, check_answer, check_packet, good_answer, \
        split_answer


def entry_points(zones: Path, loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[bytes], None]]:
    """Name -> the check of one input given as raw bytes."""
    for name in ("packet", "answer"):
        (zones / name).mkdir()
    packet_app = build_app(zones / "packet", FakeGroup())
    group = BadGroup()
    answer_app = build_app(zones / "answer", group, cache_size=0)
    return {
        "packet": lambda data: check_packet(packet_app, loop, data, "udp"),
        "answer": lambda data: check_answer(answer_app, group, loop, *split_answer(data), whole=False),
        "whole": lambda data: check_answer(answer_app, group, loop, *good_answer(data), whole=True),
    }


def main() -> None:
    entry = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        check = entry_points(Path(tmp), asyncio.new_event_loop())[entry]
        atheris.Setup([sys.argv[0], *sys.argv[2:]], check)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
