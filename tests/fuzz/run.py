"""The long fuzz run (`make fuzz`): the properties of tests/fuzz/properties.py, N inputs per entry point.

    python -m tests.fuzz.run [--inputs N] [ENTRY ...]     entries: packet, answer, whole (default all)

Prints inputs and seconds per entry point; exits 1 with hypothesis's minimal failing input on a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from hypothesis import HealthCheck, given, settings

from tests.fuzz.properties import BadGroup, FakeGroup, bad_answers, build_app, check_answer, check_packet, \
    client_packets, good_answers


def entry_points(zones: Path, loop: asyncio.AbstractEventLoop) -> dict[str, tuple[object, Callable]]:
    """Name -> (strategy, check of one input)."""
    packet_app = build_app(zones / "packet", FakeGroup())
    group = BadGroup()
    answer_app = build_app(zones / "answer", group, cache_size=0)
    return {
        "packet": (client_packets, lambda data: check_packet(packet_app, loop, data, "udp")),
        "answer": (bad_answers, lambda a: check_answer(answer_app, group, loop, a[0], a[1], whole=False)),
        "whole": (good_answers(), lambda a: check_answer(answer_app, group, loop, a[0], a[1], whole=True)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=2_000_000, help="inputs per entry point")
    parser.add_argument("entries", nargs="*", default=["packet", "answer", "whole"])
    args = parser.parse_args(argv)
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("packet", "answer"):
            (Path(tmp) / name).mkdir()
        entries = entry_points(Path(tmp), loop)
        for name in args.entries:
            strategy, check = entries[name]
            seen = [0]

            def counted(value, check=check, seen=seen) -> None:
                seen[0] += 1
                check(value)

            prop = settings(
                max_examples=args.inputs, deadline=None, database=None, suppress_health_check=list(HealthCheck)
            )(given(strategy)(lambda value: counted(value)))
            started = time.monotonic()
            prop()
            print(f"{name}: {seen[0]} inputs in {time.monotonic() - started:.1f} s, no failure", flush=True)
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
