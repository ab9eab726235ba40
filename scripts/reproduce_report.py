"""Tables, verdicts and plots of scripts/reproduce.py's runs: ``results.json``, ``results.md`` and three PNGs.

The decision rule is docs/reproduction.md's: a paired difference (BSR minus BT, same seed) supports the paper when
its two-sided 95% t-interval lies wholly on the paper's side of 0, contradicts it when wholly on the other side,
and shows no effect otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
SCENARIO_METRIC = {"val1": "accuracy", "val2": "kendall_tau", "val3": "kendall_tau", "val4": "kendall_tau"}
COLORS = {"bt": "tab:red", "bsr_1e-3": "tab:blue", "bsr_1e-2": "tab:green"}


def mean_se(values: list[float]) -> dict:
    """Mean, standard error (ddof 1) and the number of values."""
    x = np.asarray(values, dtype=float)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")
    return {"mean": round(float(x.mean()), 4), "se": round(se, 4), "n": len(x)}


def paired(bsr: list[float], bt: list[float], better: str) -> dict:
    """BSR minus BT per seed, its mean, SE, 95% t-interval and the verdict; ``better`` is ``higher`` or ``lower``
    (the paper's direction for BSR)."""
    d = np.asarray(bsr, dtype=float) - np.asarray(bt, dtype=float)
    stats = mean_se(d.tolist())
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("inf")
    half = T975.get(len(d) - 1, 1.96) * se
    low, high = float(d.mean()) - half, float(d.mean()) + half
    sign = 1 if better == "higher" else -1
    verdict = ("support" if sign * low > 0 and sign * high > 0 else
               "contradiction" if sign * low < 0 and sign * high < 0 else "no effect")
    return {**stats, "ci95": [round(low, 4), round(high, 4)], "verdict": verdict, "paper_expects": better}


def claim1_summary(runs: dict) -> dict:
    """Final (last validation) and first-epoch values per condition, and BSR-BT paired differences at the end."""
    keys = {"val/accuracy": "higher", "val/hidden_norm_std": "lower", "val/reward_std": "lower"}
    out: dict = {"final": {}, "paired_final": {}, "bt_trend": {}}
    for cond, seeds in runs.items():
        out["final"][cond] = {k: mean_se([s["val"][-1][k] for s in seeds]) for k in (*keys, "val/hidden_norm_mean")}
    for cond in (c for c in runs if c != "bt"):
        out["paired_final"][cond] = {k: paired([s["val"][-1][k] for s in runs[cond]],
                                               [s["val"][-1][k] for s in runs["bt"]], better)
                                     for k, better in keys.items()}
    # over-optimization of BT: the last validation against the one after the first epoch (same seed)
    first_epoch = 1  # val_check_interval 0.5: index 1 is the end of epoch 1
    for k, better in (("val/accuracy", "lower"), ("val/hidden_norm_std", "higher")):
        out["bt_trend"][k] = paired([s["val"][-1][k] for s in runs["bt"]],
                                    [s["val"][min(first_epoch, len(s["val"]) - 1)][k] for s in runs["bt"]], better)
    return out


def claim2_summary(runs: dict) -> dict:
    out: dict = {"mean": {}, "paired": {}}
    conds = [c for c in runs if c != "report"]
    for cond in conds:
        out["mean"][cond] = {s: mean_se(runs[cond][s]) for s in SCENARIO_METRIC}
    for cond in (c for c in conds if c != "bt"):
        out["paired"][cond] = {s: paired(runs[cond][s], runs["bt"][s], "higher") for s in SCENARIO_METRIC}
    return out


def claim3_summary(runs: dict) -> dict:
    out: dict = {"start": {}, "final": {}}
    for cond, seeds in runs.items():
        out["start"][cond] = {k: mean_se([s["val"][0][k] for s in seeds]) for k in ("val/gold_reward", "val/kl")}
        out["final"][cond] = {k: mean_se([s["val"][-1][k] for s in seeds])
                              for k in ("val/gold_reward", "val/kl", "val/proxy_reward", "val/response_length")}
    out["paired_final_gold"] = paired([s["val"][-1]["val/gold_reward"] for s in runs["bsr_1e-3"]],
                                      [s["val"][-1]["val/gold_reward"] for s in runs["bt"]], "higher")
    return out


def _band(ax, x, runs: list[list[float]], color: str, label: str) -> None:
    y = np.asarray(runs, dtype=float)
    mean, se = y.mean(0), (y.std(0, ddof=1) / math.sqrt(len(y)) if len(y) > 1 else np.zeros(y.shape[1]))
    ax.plot(x, mean, color=color, label=label)
    ax.fill_between(x, mean - se, mean + se, color=color, alpha=0.2)


def plot_claim1(runs: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    keys = ("val/accuracy", "val/hidden_norm_mean", "val/hidden_norm_std", "val/reward_mean", "val/reward_std")
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for cond, seeds in runs.items():
        steps = [p["step"] for p in seeds[0]["val"]]
        for ax, key in zip(axes.flat, keys, strict=False):
            _band(ax, steps, [[p[key] for p in s["val"]] for s in seeds], COLORS[cond], cond)
            ax.set_title(f"held-out {key.split('/')[1]}")
        train = [[p["train/accuracy"] for p in s["train_accuracy"]] for s in seeds]
        _band(axes.flat[5], [p["step"] for p in seeds[0]["train_accuracy"]], train, COLORS[cond], cond)
        axes.flat[5].set_title("training accuracy (per epoch)")
    for ax in axes.flat:
        ax.set_xlabel("step")
    axes.flat[0].legend()
    fig.suptitle("Claim 1: MiniLM-L6 on HH-RLHF, mean ± SE over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_claim2(summary: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    conds = list(summary["mean"])
    width = 0.8 / len(conds)
    for k, cond in enumerate(conds):
        x = np.arange(4) + k * width
        ax.bar(x, [summary["mean"][cond][s]["mean"] for s in SCENARIO_METRIC], width, color=COLORS[cond],
               yerr=[summary["mean"][cond][s]["se"] for s in SCENARIO_METRIC], label=cond, capsize=3)
    ax.set_xticks(np.arange(4) + 0.4 - width / 2, [f"{s}\n{m}" for s, m in SCENARIO_METRIC.items()])
    ax.legend()
    ax.set_title("Claim 2: four scenarios (generated task), mean ± SE over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_claim3(runs: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for cond, seeds in runs.items():
        steps = [p["step"] for p in seeds[0]["val"]]
        _band(axes[0], steps, [[p["val/gold_reward"] for p in s["val"]] for s in seeds], COLORS[cond], cond)
        kl = np.mean([[p["val/kl"] for p in s["val"]] for s in seeds], axis=0)
        _band(axes[1], kl, [[p["val/gold_reward"] for p in s["val"]] for s in seeds], COLORS[cond], cond)
    axes[0].set_xlabel("RLOO step")
    axes[1].set_xlabel("KL(policy || reference), mean over seeds")
    for ax in axes:
        ax.set_ylabel("gold reward, held-out prompts")
        ax.legend()
    fig.suptitle("Claim 3: RLOO against BT vs BSR (1e-3) reward models, mean ± SE over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fmt(s: dict) -> str:
    return f"{s['mean']:.4f} ± {s['se']:.4f}"


def _paired_row(name: str, p: dict) -> str:
    return f"| {name} | {p['mean']:+.4f} ± {p['se']:.4f} | [{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}] | " \
           f"{p['paper_expects']} | **{p['verdict']}** |"


def markdown(summary: dict, run: dict) -> str:
    head = "| comparison | mean diff ± SE | 95% CI | paper expects BSR | verdict |\n|---|---|---|---|---|"
    lines = [f"Written by `{run['command']}` on {run['date']} ({run['cpu']}, {run['cores']} cores): the runs took "
             f"{run['runs_minutes']} min in all (this invocation {run['wall_minutes']} min; finished runs are "
             f"cached). Mean ± SE over seeds {run['seeds']}.", ""]
    if "claim1" in summary:
        c = summary["claim1"]
        lines += ["### Claim 1: final held-out values (MiniLM-L6, HH-RLHF)", "",
                  "| condition | accuracy | ‖h‖ mean | ‖h‖ std | reward std |", "|---|---|---|---|---|"]
        lines += [f"| {cond} | {_fmt(v['val/accuracy'])} | {_fmt(v['val/hidden_norm_mean'])} | "
                  f"{_fmt(v['val/hidden_norm_std'])} | {_fmt(v['val/reward_std'])} |" for cond, v in c["final"].items()]
        lines += ["", "BT over training (last validation minus end of epoch 1, same seed):", "", head]
        lines += [_paired_row(f"BT {k}", p) for k, p in c["bt_trend"].items()]
        lines += ["", "BSR minus BT at the last validation (same seed):", "", head]
        lines += [_paired_row(f"{cond} {k}", p) for cond, v in c["paired_final"].items() for k, p in v.items()]
    if "claim2" in summary:
        c = summary["claim2"]
        lines += ["", "### Claim 2: four scenarios (Val1 accuracy, Val2-Val4 Kendall tau)", "",
                  "| condition | " + " | ".join(SCENARIO_METRIC) + " |", "|---" * 5 + "|"]
        lines += [f"| {cond} | " + " | ".join(_fmt(v[s]) for s in SCENARIO_METRIC) + " |"
                  for cond, v in c["mean"].items()]
        lines += ["", head]
        lines += [_paired_row(f"{cond} {s}", p) for cond, v in c["paired"].items() for s, p in v.items()]
    if "claim3" in summary:
        c = summary["claim3"]
        lines += ["", "### Claim 3: RLOO, held-out gold reward", "",
                  "| reward model | gold at start | gold at end | KL at end | proxy at end | length at end |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {cond} | {_fmt(c['start'][cond]['val/gold_reward'])} | {_fmt(v['val/gold_reward'])} | "
                  f"{_fmt(v['val/kl'])} | {_fmt(v['val/proxy_reward'])} | {_fmt(v['val/response_length'])} |"
                  for cond, v in c["final"].items()]
        lines += ["", head, _paired_row("bsr_1e-3 final gold", c["paired_final_gold"])]
    return "\n".join(lines) + "\n"


def run_seconds(node) -> float:
    """The sum of every cached run's ``seconds`` in ``node`` (training and evaluation time, whichever invocation
    ran them)."""
    if isinstance(node, dict):
        return float(node.get("seconds", 0)) + sum(run_seconds(v) for k, v in node.items() if k != "seconds")
    return sum(run_seconds(v) for v in node) if isinstance(node, list) else 0.0


def write_report(results: dict, settings: dict, out: Path, seconds: float) -> None:
    """``results.json`` (every run's values, the summaries, the machine), ``results.md`` and the plots."""
    import matplotlib

    matplotlib.use("Agg")
    from bench_bf16_cpu import machine  # beside this script

    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    if "claim1" in results:
        summary["claim1"] = claim1_summary(results["claim1"])
        plot_claim1(results["claim1"], out / "claim1_overoptimization.png")
    if "claim2" in results:
        summary["claim2"] = claim2_summary(results["claim2"])
        plot_claim2(summary["claim2"], out / "claim2_scenarios.png")
    if "claim3" in results:
        summary["claim3"] = claim3_summary(results["claim3"])
        plot_claim3(results["claim3"], out / "claim3_rloo.png")
    run = {**machine(), "wall_minutes": round(seconds / 60, 1),
           "runs_minutes": round(run_seconds(results) / 60, 1),
           "seeds": settings["seeds"]}
    (out / "results.json").write_text(json.dumps({"run": run, "settings": settings, "summary": summary,
                                                  "runs": results}, indent=1) + "\n")
    (out / "results.md").write_text(markdown(summary, run))
    print(markdown(summary, run))
