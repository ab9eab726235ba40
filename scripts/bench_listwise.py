"""Listwise against binarized reward training on the same 4-response sets: data responses per second of training
and held-out per-prompt Kendall tau.

    python scripts/bench_listwise.py --seeds 0 1 --output docs/bench_listwise.json

Data: the generated task's response table (``synthetic_task.response_table``), ``--sets`` prompts x 4 responses with
gold scores, the seed's 20% of prompts held out. ``listwise``: ``ListwiseRewardModel`` (``AllPairs``, Bradley-Terry)
on the sets, each set one group; ``binarized``: ``RewardModel`` on every ordered pair with a score gap of the same
sets (up to 6 per set), both with ``SharedPrefix`` (each prompt computed once per group: 4 responses, or a pair).
One epoch each, batches of 8 sets / 8 pairs, lr 1e-3, the tiny offline Llama (``tiny:synthetic``), fp32. Each row in
a fresh process, the two alternating per seed; ``fit`` is timed (model loading excluded). Held-out tau is
``evaluate --format multi`` on the held-out sets. The last line is one JSON object with
``ratio_responses_per_s`` and ``tau`` per row (means over seeds).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROWS = ("listwise", "binarized")


def write_data(folder: Path, sets: int, seed: int) -> dict[str, str]:
    """``train_sets.jsonl``, ``train_pairs.jsonl`` (the same sets binarized) and ``heldout.jsonl``."""
    from bsr_lightning.synthetic_task import response_table

    by_prompt = defaultdict(list)
    for index, row in enumerate(response_table(sets, 4, seed=seed)):
        by_prompt[index // 4].append(row)
    groups = [{"prompt": rows[0]["prompt"], "responses": [r["response"] for r in rows],
               "scores": [r["score"] for r in rows]} for rows in by_prompt.values()
              if len({r["score"] for r in rows}) > 1]
    random.Random(seed).shuffle(groups)
    cut = len(groups) // 5
    held, train = groups[:cut], groups[cut:]
    pairs = [{"prompt": g["prompt"], "chosen": g["responses"][i], "rejected": g["responses"][j]}
             for g in train for i in range(4) for j in range(4) if g["scores"][i] > g["scores"][j]]
    paths = {}
    for name, items in (("train_sets", train), ("train_pairs", pairs), ("heldout", held)):
        paths[name] = str(folder / f"{name}.jsonl")
        Path(paths[name]).write_text("".join(json.dumps(x) + "\n" for x in items))
    return paths


def run(row: str, paths: dict, seed: int, folder: str) -> dict:
    """One row in this process: fit one epoch, time it, export, and evaluate held-out tau."""
    import lightning as L

    from bsr_lightning import (
        Backbone,
        ListwiseDataModule,
        ListwiseRewardModel,
        Optimization,
        PreferenceDataModule,
        RewardModel,
    )
    from bsr_lightning.backbones.export import export_module
    from bsr_lightning.evaluation.evaluate import evaluate
    from bsr_lightning.reward.forward import SharedPrefix

    L.seed_everything(seed)
    model_cls, data_cls, data = ((ListwiseRewardModel, ListwiseDataModule, paths["train_sets"]) if row == "listwise"
                                 else (RewardModel, PreferenceDataModule, paths["train_pairs"]))
    module = model_cls(Backbone("tiny:synthetic"), optimization=Optimization(lr=1e-3, schedule="constant"),
                       forward_mode=SharedPrefix(), score_init="normal")
    datamodule = data_cls(path=data, batch_size=8, val_fraction=0.0, max_length=256, seed=seed)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    start = time.perf_counter()
    trainer.fit(module, datamodule)
    seconds = time.perf_counter() - start
    responses = 4 * sum(1 for _ in open(paths["train_sets"]))
    export = export_module(module, Path(folder) / f"{row}_{seed}")
    tau = evaluate(str(export), paths["heldout"], str(Path(folder) / f"eval_{row}_{seed}"), format="multi",
                   max_length=256)["kendall_tau"]
    return {"row": row, "seed": seed, "seconds": round(seconds, 2), "data_responses": responses,
            "responses_per_s": round(responses / seconds, 2), "heldout_tau": round(tau, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--output", default=None)
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--paths", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(run(args.row, json.loads(args.paths), args.seed, args.folder)))
        return
    import numpy as np
    from bench_bf16_cpu import machine  # beside this script

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            folder = Path(tmp) / str(seed)
            folder.mkdir()
            paths = write_data(folder, args.sets, seed)
            for row in ROWS:
                done = subprocess.run([sys.executable, __file__, "--row", row, "--paths", json.dumps(paths), "--seed",
                                       str(seed), "--folder", str(folder)], capture_output=True, text=True,
                                      check=True)
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    by_row = {row: [r for r in results if r["row"] == row] for row in ROWS}
    ratios = [a["responses_per_s"] / b["responses_per_s"] for a, b in zip(by_row["listwise"], by_row["binarized"],
                                                                            strict=True)]
    taus = {row: [r["heldout_tau"] for r in rs] for row, rs in by_row.items()}
    summary = {"benchmark": "listwise-vs-binarized", **machine(), "settings": {
        "sets": args.sets, "responses_per_set": 4, "batch_size": 8, "epochs": 1, "lr": 1e-3,
        "model": "tiny:synthetic", "forward_mode": "SharedPrefix", "dtype": "float32"}, "rows": results,
        "ratio_responses_per_s": round(float(np.mean(ratios)), 3),
        "tau": {row: {"mean": round(float(np.mean(t)), 4), "values": t} for row, t in taus.items()}}
    if args.output:
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
