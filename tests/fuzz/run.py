"""The long fuzz run (`make fuzz`): each entry point of tests/fuzz/target.py under atheris for N inputs.

    python -m tests.fuzz.run [--inputs N] [--max-seconds S] [ENTRY ...]     entries: packet, answer, whole

One process per entry point, one after another (libFuzzer ends its process when done). Prints inputs and
seconds per entry point; exits 1 on a failure, with the failing input kept in tests/artifacts/fuzz/.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.properties import seed_inputs

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "fuzz"
DONE = re.compile(r"Done (\d+) runs in")


def fuzz(entry: str, inputs: int, max_seconds: int, corpus: Path) -> tuple[int, float, int]:
    """Run one entry point from its seeds; (inputs run, seconds, exit code). libFuzzer's output is passed on."""
    corpus.mkdir()
    for i, data in enumerate(seed_inputs(entry)):
        (corpus / f"seed-{i}").write_bytes(data)
    command = [
        sys.executable, "-m", "tests.fuzz.target", entry, f"-runs={inputs}", f"-max_total_time={max_seconds}",
        "-timeout=10", "-max_len=1024", f"-artifact_prefix={ARTIFACTS}/{entry}-", str(corpus),
    ]
    started = time.monotonic()
    runs = 0
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace") as proc:
        for line in proc.stderr:
            sys.stderr.write(line)
            done = DONE.match(line)
            runs = int(done[1]) if done else runs
    return runs, time.monotonic() - started, proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=2_000_000, help="inputs per entry point")
    parser.add_argument("--max-seconds", type=int, default=3 * 3600, help="time bound per entry point")
    parser.add_argument("entries", nargs="*", default=["packet", "answer", "whole"])
    args = parser.parse_args(argv)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.entries:
            runs, seconds, code = fuzz(name, args.inputs, args.max_seconds, Path(tmp) / name)
            if code != 0:
                verdict = f"FAILED (exit {code}), input kept in {ARTIFACTS}"
            elif runs < args.inputs:
                verdict = "stopped at the time bound"
            else:
                verdict = "no failure"
            results.append(f"{name}: {runs} inputs in {seconds:.1f} s ({runs / seconds:.0f}/s), {verdict}")
            print(results[-1], flush=True)
    print("\n".join(results))
    return 0 if all(line.endswith("no failure") for line in results) else 1


if __name__ == "__main__":
    sys.exit(main())
