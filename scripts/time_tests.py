"""How long the test suite takes on this machine: the README's `make test` figure, from a file.

    python scripts/time_tests.py --jobs auto --output docs/test_time.json

Runs `make test JOBS=...` itself (the Makefile holds pytest's options and the offline settings; each test runs in
a scratch directory of its own) and writes the JSON: the date, the CPU model, the cores, the command, the wall time
and pytest's own summary (passed, skipped, failed). Run it alone on the machine: it is a benchmark. A venv that
`make` has yet to create or update is installed first, inside the timed run.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def summary_counts(line: str) -> dict[str, int]:
    """pytest's last line, e.g. ``455 passed, 1 skipped in 356.06s (0:05:56)``, as ``{"passed": 455, "skipped": 1}``
    (``1 error`` and ``2 errors`` both count under ``errors``)."""
    found = re.findall(r"(\d+) (passed|skipped|failed|errors?|xfailed|xpassed)\b", line)
    return {("errors" if name.startswith("error") else name): int(n) for n, name in found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="auto", help="pytest-xdist workers, as make test's JOBS (0: one process)")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    args = parser.parse_args()
    from bench_bf16_cpu import machine  # beside this script

    started = time.perf_counter()
    done = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "test", f"JOBS={args.jobs}"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    result = {**machine(), "jobs": args.jobs, "exit_status": done.returncode, "wall_seconds": round(seconds, 1),
              "summary": last, **summary_counts(last)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
