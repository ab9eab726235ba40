"""Where a training step of any scripts/bench_rm.py row spends its time, the project's or TRL's, on the same data
and settings: ``torch.profiler`` over optimizer steps ``--warmup_steps + 1`` to ``--warmup_steps + --steps``.

    python scripts/profile_rm.py --row project-bf16 --steps 40 --output /tmp/profile_project-bf16.json
    python scripts/profile_rm.py --row trl-bf16-grouped --steps 40 --output /tmp/profile_trl-bf16-grouped.json

Every bench_rm option applies (``--buckets``, ``--batch_size``, ``--seeds`` (the first), ``--max_pairs``, ...); one
row per process. Prints the operators with the most self CPU time and one JSON line: pairs/s and computed tokens/s
(the transformer's positions, padding included) inside the window, the share of self CPU time in matrix multiplies
and attention kernels, in the optimizer and in everything else, and the top operators in milliseconds and calls per
step, so that two rows' JSONs can be compared operator by operator. bf16 rows are profiled even without native
bf16; ``native_bf16`` in the JSON says whether the CPU has it (without it, bf16 is emulated and the profile shows
the emulation).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_rm  # noqa: E402

MATMUL = ("aten::addmm", "aten::mm", "aten::bmm", "aten::_scaled_dot_product", "aten::_flash_attention",
          "aten::matmul", "aten::linear", "mkldnn", "onednn")


def category(key: str) -> str:
    """``matmul`` (matrix multiplies and attention kernels), ``optimizer`` or ``other``, for a profiler event key."""
    if key.startswith(MATMUL):
        return "matmul"
    if "Optimizer.step" in key or "_foreach" in key or "adam" in key.lower():
        return "optimizer"
    return "other"


class Window:
    """Starts ``profiler`` after optimizer step ``warmup`` and stops it after step ``warmup + steps``, recording the
    wall time and ``counter``'s computed tokens in between; called after every optimizer step."""

    def __init__(self, profiler, counter, warmup: int, steps: int) -> None:
        self.profiler, self.counter, self.warmup, self.steps = profiler, counter, warmup, steps
        self.step = 0
        self.started = self.tokens_before = self.seconds = self.tokens = None

    def __call__(self) -> None:
        self.step += 1
        if self.step == self.warmup:
            self.profiler.start()
            self.started, self.tokens_before = time.perf_counter(), self.counter.count
        elif self.step == self.warmup + self.steps:
            self.seconds = time.perf_counter() - self.started
            self.tokens = self.counter.count - self.tokens_before
            self.profiler.stop()


def train_with(row, window: Window) -> None:
    """Train ``row`` with ``window`` called after each optimizer step (torch's hook for every optimizer, so the
    project's Lightning loop and TRL's Trainer are stepped alike)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    handle = register_optimizer_step_post_hook(lambda *_: window())
    try:
        row.train()
    finally:
        handle.remove()


def report(events, window: Window, batch_size: int, top: int) -> dict:
    """The window's figures from the profiler's ``key_averages()``."""
    total = sum(e.self_cpu_time_total for e in events) or 1
    shares = {name: 0.0 for name in ("matmul", "optimizer", "other")}
    for e in events:
        shares[category(e.key)] += e.self_cpu_time_total / total
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {"steps": window.steps, "seconds_per_step": round(window.seconds / window.steps, 4),
            "pairs_per_s": round(window.steps * batch_size / window.seconds, 3),
            "computed_tokens_per_s": round(window.tokens / window.seconds, 1),
            **{f"share_{name}": round(share, 3) for name, share in shares.items()},
            "top": [{"op": e.key, "ms_per_step": round(e.self_cpu_time_total / 1e3 / window.steps, 2),
                     "calls_per_step": round(e.count / window.steps, 1)} for e in ranked]}


def main() -> None:
    parser = bench_rm.build_parser(__doc__)
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps profiled")
    parser.add_argument("--warmup_steps", type=int, default=5, help="optimizer steps run before the window")
    parser.add_argument("--top", type=int, default=25, help="operators listed")
    args = parser.parse_args()
    if args.row is None:
        parser.error("--row is required: the bench_rm row to profile, e.g. --row project-bf16")
    if args.steps < 1 or args.warmup_steps < 1:
        parser.error("--steps and --warmup_steps must be at least 1")
    if args.decoder_precision == "auto":
        args.decoder_precision = "bf16" if bench_rm.bf16_enabled(args.bf16) else "fp32"
    if bench_rm.ROWS[args.row][3] == "decoder":
        bench_rm.decoder_path(args)
    args.seed = args.seeds[0]

    import torch
    from bench_bf16_cpu import machine
    from bench_decoder import ComputedTokens
    from torch.profiler import ProfilerActivity, profile

    with tempfile.TemporaryDirectory() as tmp:
        row, precision, _ = bench_rm.build_row(args, tmp, max_steps=args.warmup_steps + args.steps)
        profiler = profile(activities=[ProfilerActivity.CPU])
        window = Window(profiler, ComputedTokens(row.model), args.warmup_steps, args.steps)
        train_with(row, window)
    if window.seconds is None:
        parser.error(f"only {window.step} optimizer steps ran, fewer than --warmup_steps + --steps "
                     f"({args.warmup_steps + args.steps}): lower them or raise --max_pairs")
    events = profiler.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top))
    result = {"row": args.row, "precision": precision, "seed": args.seed, "batch_size": args.batch_size,
              "buckets": args.buckets, "decoder_buckets": args.decoder_buckets,
              **report(events, window, args.batch_size, args.top),
              "native_bf16": bench_rm.native_bf16(), "torch_threads": torch.get_num_threads(), "run": machine()}
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
