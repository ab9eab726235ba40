"""Where a reward-model training step spends its time: ``torch.profiler`` over a few steps of ``bench_rm.py``'s
project row (MiniLM-L6, HH-RLHF pairs, grouped batches, ``LengthBuckets``).

    python scripts/profile_rm.py --precision bf16 --buckets 4 --steps 30

Prints the operators with the most self CPU time and one JSON line: the share of the step in matrix multiplies
(``aten::addmm``/``mm``/``bmm``/``linear``/attention kernels), in the optimizer and in everything else, and the
wall time per step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_rm  # noqa: E402

MATMUL = ("aten::addmm", "aten::mm", "aten::bmm", "aten::_scaled_dot_product", "aten::_flash_attention",
          "aten::matmul", "aten::linear", "mkldnn", "onednn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--buckets", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    import lightning as L
    import torch
    from torch.profiler import ProfilerActivity, profile

    from bsr_lightning import Backbone, Optimization, RewardModel
    from bsr_lightning.reward.forward import LengthBuckets

    data_args = argparse.Namespace(data=bench_rm.DATA, max_length=512, batch_size=args.batch_size, max_pairs=None)
    L.seed_everything(0)
    dm = bench_rm.datamodule(data_args)
    module = RewardModel(Backbone(bench_rm.MODEL), optimization=Optimization(lr=5e-5, warmup_ratio=0.0),
                         forward_mode=LengthBuckets(args.buckets))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps, limit_val_batches=0,
                        num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, precision="bf16-mixed" if args.precision == "bf16" else "32-true")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        trainer.fit(module, dm)
        seconds = time.perf_counter() - start
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top))
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key.startswith(MATMUL))
    optim = sum(e.self_cpu_time_total for e in events if "Optimizer.step" in e.key or "_foreach" in e.key
                or "adam" in e.key.lower())
    print(json.dumps({"precision": args.precision, "buckets": args.buckets, "steps": args.steps,
                      "seconds_per_step": round(seconds / args.steps, 3),
                      "share_matmul": round(matmul / total, 3), "share_optimizer": round(optim / total, 3),
                      "share_other": round(1 - (matmul + optim) / total, 3), "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
