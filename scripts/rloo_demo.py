"""The paper's RLOO comparison in miniature, offline on CPU in a few minutes.

    python scripts/rloo_demo.py --output_dir artifacts/rloo_demo

1. SFT the tiny policy (``tiny:synthetic``) on the generated task's chosen responses (configs/sft/synthetic_tiny.yaml).
2. Train a BT and a BSR reward model on a limited preference set (configs/reward/synthetic_tiny.yaml).
3. Run RLOO against each (configs/rloo/synthetic_tiny.yaml), the task's gold reward logged beside the proxy.
4. Plot proxy and gold reward against KL for both (Gao et al. 2023's over-optimization curve) and write
   ``overoptimization.png``, ``summary.md`` and ``summary.json`` (proxy, gold, KL and response length at the start
   and the end of RLOO, measured on held-out prompts).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
KEYS = ("proxy_reward", "gold_reward", "kl", "response_length")


def run(args: list[str]) -> None:
    from bsr_lightning.cli import cli_main

    print("+ python -m bsr_lightning " + " ".join(args), flush=True)
    cli_main(args)


def last_metrics(root: Path) -> list[dict]:
    """Rows of the newest ``metrics.csv`` under ``root``."""
    path = max(root.glob("lightning_logs/version_*/metrics.csv"), key=lambda p: p.stat().st_mtime)
    with open(path) as handle:
        return list(csv.DictReader(handle))


def val_point(rows: list[dict]) -> dict[str, float]:
    """The last validation measurement (held-out prompts) in ``rows``."""
    row = [r for r in rows if r.get("val/gold_reward")][-1]
    return {k: round(float(row[f"val/{k}"]), 4) for k in KEYS}


def train(out: Path, steps: int, overrides: list[str], rloo_overrides: list[str]) -> dict:
    run(["fit", "--config", str(CONFIGS / "sft/synthetic_tiny.yaml"), "--trainer.default_root_dir", str(out / "sft"),
         "--trainer.callbacks.output_dir", str(out / "sft_policy"), *overrides])
    results = {}
    for name, regularizer in (("bt", "bsr_lightning.reward.regularizers.NoRegularizer"),
                              ("bsr", "bsr_lightning.reward.regularizers.BatchSumToZero")):
        rm_dir = out / f"reward_{name}"
        run(["fit", "--config", str(CONFIGS / "reward/synthetic_tiny.yaml"), "--model.regularizer", regularizer,
             "--trainer.default_root_dir", str(rm_dir), "--trainer.callbacks.output_dir", str(rm_dir / "reward_model"),
             *overrides])
        rloo_dir = out / f"rloo_{name}"
        common = ["--config", str(CONFIGS / "rloo/synthetic_tiny.yaml"), "--model.backbone.name",
                  str(out / "sft_policy"), "--model.reward.path", str(rm_dir / "reward_model"), *rloo_overrides]
        run(["validate", *common, "--trainer.default_root_dir", str(out / f"start_{name}")])
        start = val_point(last_metrics(out / f"start_{name}"))
        run(["fit", *common, "--trainer.default_root_dir", str(rloo_dir), "--trainer.max_steps", str(steps),
             "--trainer.callbacks.output_dir", str(rloo_dir / "policy")])
        rows = last_metrics(rloo_dir)
        rm_rows = last_metrics(rm_dir)
        results[name] = {"start": start, "end": val_point(rows), "curve": curve(rows),
                         "reward_model_val_accuracy": round(float([r for r in rm_rows if r.get("val/accuracy")][-1]
                                                                  ["val/accuracy"]), 4)}
    return results


def curve(rows: list[dict], window: int = 10) -> dict[str, list[float]]:
    """Training-batch KL, proxy and gold reward, smoothed with a running mean over ``window`` steps."""
    points = [(float(r["train/kl"]), float(r["train/proxy_reward"]), float(r["train/gold_reward"]))
              for r in rows if r.get("train/kl")]
    smoothed = []
    for i in range(len(points)):
        chunk = points[max(0, i - window + 1) : i + 1]
        smoothed.append([sum(c[j] for c in chunk) / len(chunk) for j in range(3)])
    return {name: [round(p[j], 4) for p in smoothed] for j, name in enumerate(("kl", "proxy_reward", "gold_reward"))}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, color in (("bt", "tab:red"), ("bsr", "tab:blue")):
        c = results[name]["curve"]
        axes[0].plot(c["kl"], c["proxy_reward"], color=color, label=f"{name.upper()} reward model")
        axes[1].plot(c["kl"], c["gold_reward"], color=color, label=f"{name.upper()} reward model")
    for ax, title in zip(axes, ("proxy reward (the reward model's score)", "gold reward"), strict=True):
        ax.set_xlabel("KL(policy || reference), nats per response")
        ax.set_title(title)
        ax.legend()
    fig.suptitle("RLOO against a BT vs a BSR reward model (training batches, running mean of 10 steps)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def summarize(results: dict, out: Path, seconds: float) -> None:
    lines = ["# RLOO demo: BT vs BSR reward model", "",
             "Held-out prompts (`val` of configs/rloo/synthetic_tiny.yaml: 16 prompts x k=4 samples), before and "
             "after RLOO. Proxy rewards of the two reward models are on different scales; compare gold.", "",
             "| reward model | RM val acc | | proxy | gold | KL | length |", "|---|---|---|---|---|---|---|"]
    for name in ("bt", "bsr"):
        for when in ("start", "end"):
            p = results[name][when]
            lines.append(f"| {name.upper()} | {results[name]['reward_model_val_accuracy']} | {when} | "
                         f"{p['proxy_reward']} | {p['gold_reward']} | {p['kl']} | {p['response_length']} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    summary = {name: {k: results[name][k] for k in ("start", "end", "reward_model_val_accuracy")}
               for name in ("bt", "bsr")}
    from bench_bf16_cpu import machine  # beside this script

    summary["run"] = {**machine(), "wall_seconds": round(seconds, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="artifacts/rloo_demo")
    parser.add_argument("--rloo_steps", type=int, default=300, help="optimizer steps of each RLOO run")
    parser.add_argument("--quick", action="store_true", help="a few steps of everything (smoke test)")
    args = parser.parse_args()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    overrides = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches",
                 "1"] if args.quick else []
    # the end point is the fit's last validation: --rloo_steps must be a multiple of val_check_interval (25)
    rloo_overrides = ["--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1"] if args.quick else []
    started = time.perf_counter()
    results = train(out, 4 if args.quick else args.rloo_steps, overrides, rloo_overrides)
    (out / "curves.json").write_text(json.dumps({k: v["curve"] for k, v in results.items()}) + "\n")
    plot(results, out / "overoptimization.png")
    summarize(results, out, time.perf_counter() - started)
    print(f"Wrote {out / 'overoptimization.png'}, {out / 'summary.md'} and {out / 'summary.json'}")


if __name__ == "__main__":
    main()
