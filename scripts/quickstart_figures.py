"""The README's `make demo` figures, measured: wall time and held-out accuracy of the quickstart on this machine.

    python scripts/quickstart_figures.py --output docs/quickstart.json [--precision 32-true]

Runs `python -m bsr_lightning fit --config configs/quickstart.yaml` in a fresh process into a temporary root and
writes the date, the CPU model, the precision, the wall time and `val/accuracy` to the JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_bf16_cpu import cpu_model  # beside this script (on sys.path when it runs)

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="quickstart.json")
    parser.add_argument("--precision", default="32-true")
    args = parser.parse_args()
    import datetime

    import torch

    with tempfile.TemporaryDirectory() as root:
        command = [sys.executable, "-m", "bsr_lightning", "fit", "--config", str(REPO / "configs/quickstart.yaml"),
                   "--trainer.precision", args.precision, "--trainer.default_root_dir", root,
                   "--trainer.enable_progress_bar", "false"]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1",
                                                                                 **__import__("os").environ})
        seconds = time.perf_counter() - started
        rows = list(csv.DictReader(open(next(Path(root).rglob("metrics.csv")))))
        accuracy = [float(r["val/accuracy"]) for r in rows if r.get("val/accuracy")][-1]
    result = {"date": datetime.date.today().isoformat(), "cpu": cpu_model(),
              "capability": torch.backends.cpu.get_cpu_capability(), "precision": args.precision,
              "wall_seconds": round(seconds, 1), "val_accuracy": accuracy,
              "command": f"python scripts/quickstart_figures.py --output {args.output} --precision {args.precision}"}
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
