"""Peak memory of ``python -m bsr_lightning evaluate`` as the dataset grows: streaming against holding every row.

    python scripts/bench_eval_memory.py --sizes 1000 10000 100000 --output docs/bench_eval_memory.json

Each size N is N responses (N/2 synthetic preference pairs in a ``.jsonl.gz``), scored by a tiny exported reward
model (``tiny:synthetic`` with a random score head; memory does not depend on its quality), fp32 on CPU, batch 64.
Every run is a fresh process; peak RSS is its ``ru_maxrss``. ``streaming`` is the default ``--chunk_rows 2048``;
``hold_all`` sets ``--chunk_rows`` to the dataset size, which is what holding all rows in memory costs. The last
line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHILD = """
import json, resource, sys, time
from bsr_lightning.evaluation.evaluate import evaluate
start = time.perf_counter()
m = evaluate(model=sys.argv[1], data=sys.argv[2], output_dir=sys.argv[3], batch_size=64, chunk_rows=int(sys.argv[4]))
print(json.dumps({"seconds": time.perf_counter() - start, "accuracy": m["accuracy"], "pairs": m["pairs"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_model(path: Path) -> str:
    import torch

    from bsr_lightning import Backbone, RewardModel
    from bsr_lightning.backbones.export import export_module

    torch.manual_seed(0)
    return str(export_module(RewardModel(Backbone("tiny:synthetic"), score_init="normal"), path))


def write_pairs(path: Path, responses: int) -> str:
    from bsr_lightning.synthetic_task import generate_preference_rows

    rows = generate_preference_rows(1000, seed=0)
    with gzip.open(path, "wt") as f:
        for i in range(responses // 2):
            f.write(json.dumps(rows[i % len(rows)]) + "\n")
    return str(path)


def measure(model: str, data: str, out: Path, chunk_rows: int) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, model, data, str(out), str(chunk_rows)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--hold_all_up_to", type=int, default=100000, help="skip hold_all above this size")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model(Path(tmp) / "rm")
        for n in args.sizes:
            data = write_pairs(Path(tmp) / f"pairs_{n}.jsonl.gz", n)
            row = {"responses": n, "streaming": measure(model, data, Path(tmp) / "out", 2048)}
            if n <= args.hold_all_up_to:
                row["hold_all"] = measure(model, data, Path(tmp) / "out", n // 2)
            print(row, flush=True)
            results.append(row)
    summary = {"sizes": results}
    if args.output:
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
