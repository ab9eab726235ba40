"""Tables, verdicts and the plot of scripts/reproduce_length.py's runs (docs/reproduction.md, "Claim 4"):
``results.json``, ``results.md`` and ``claim4_rloo_length.png``, with the decision rule of
:mod:`reproduce_report` (a paired 95% t-interval over seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from reproduce_report import COLORS, _band, _fmt, _paired_row, mean_se, paired, run_seconds  # beside this script

HEAD = "| comparison | mean diff ± SE | 95% CI | expected | verdict |\n|---|---|---|---|---|"


def rm_summary(rm: dict, gold_spearman: list[float]) -> dict:
    """Per level: means per condition, BT's excess length correlation over gold's, BSR minus BT."""
    out: dict = {}
    for level, conds in rm.items():
        bt = conds["bt"]
        out[level] = {
            "mean": {c: {k: mean_se([s[k] for s in runs]) for k in ("accuracy", "reward_length_spearman")}
                     for c, runs in conds.items()},
            "bt_learns_length": paired([s["reward_length_spearman"] for s in bt], gold_spearman[: len(bt)],
                                       "higher"),
            "paired": {c: {"reward_length_spearman": paired([s["reward_length_spearman"] for s in runs],
                                                            [s["reward_length_spearman"] for s in bt], "lower"),
                           "accuracy": paired([s["accuracy"] for s in runs], [s["accuracy"] for s in bt], "higher")}
                       for c, runs in conds.items() if c != "bt"}}
    return out


def rloo_summary(runs: dict) -> dict:
    keys = ("val/gold_reward", "val/kl", "val/proxy_reward", "val/response_length")
    out: dict = {"start": {}, "final": {}}
    for cond, seeds in runs.items():
        out["start"][cond] = {k: mean_se([s["val"][0][k] for s in seeds]) for k in keys}
        out["final"][cond] = {k: mean_se([s["val"][-1][k] for s in seeds]) for k in keys}

    def final(cond: str, key: str) -> list[float]:
        return [s["val"][-1][key] for s in runs[cond]]

    out["paired"] = {"val/response_length": paired(final("bsr_1e-3", "val/response_length"),
                                                   final("bt", "val/response_length"), "lower"),
                     "val/gold_reward": paired(final("bsr_1e-3", "val/gold_reward"), final("bt", "val/gold_reward"),
                                               "higher")}
    return out


def hh_summary(runs: dict) -> dict:
    keys = ("accuracy", "reward_length_spearman")
    return {"mean": {c: {k: mean_se([s[k] for s in seeds]) for k in keys} for c, seeds in runs.items()},
            "paired": {"reward_length_spearman": paired([s["reward_length_spearman"] for s in runs["bsr_1e-3"]],
                                                        [s["reward_length_spearman"] for s in runs["bt"]], "lower")}}


def plot_rloo(runs: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for cond, seeds in runs.items():
        steps = [p["step"] for p in seeds[0]["val"]]
        for ax, key in zip(axes, ("val/response_length", "val/gold_reward"), strict=True):
            _band(ax, steps, [[p[key] for p in s["val"]] for s in seeds], COLORS[cond], cond)
    for ax, label in zip(axes, ("response length (tokens), held-out prompts", "gold reward, held-out prompts"),
                         strict=True):
        ax.set_xlabel("RLOO step")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle("Claim 4: RLOO against reward models trained on length-biased labels, mean ± SE over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _mean_row(cond: str, m: dict) -> str:
    return f"| {cond} | {_fmt(m['accuracy'])} | {_fmt(m['reward_length_spearman'])} |"


def markdown(summary: dict, run: dict) -> str:
    lines = [f"Written by `{run['command']}` on {run['date']} ({run['cpu']}, {run['cores']} cores): the runs took "
             f"{run['runs_minutes']} min in all (this invocation {run['wall_minutes']} min; finished runs are "
             f"cached). Mean ± SE over seeds {run['seeds']}.", ""]
    facts = summary.get("facts")
    if facts:
        syn, hh = facts["synthetic"], facts["hh"]
        lines += ["#### Data (no model)", "", "| length_bias | longer chosen | shorter chosen | labels set by length | "
                  "gold accuracy of the labels |", "|---|---|---|---|---|"]
        lines += [f"| {lv} | {f['longer_chosen']:.4f} | {f['shorter_chosen']:.4f} | {f['length_labelled']:.4f} | "
                  f"{f['gold_accuracy_of_labels']:.4f} |" for lv, f in syn["levels"].items()]
        q = syn["response_words"]
        lines += ["", f"Response lengths (words = tokens of the tiny model): mean {q['mean']}, quantiles 0/10/25/50/75/"
                  f"90/100%: {q['q0']:.0f}/{q['q10']:.0f}/{q['q25']:.0f}/{q['q50']:.0f}/{q['q75']:.0f}/{q['q90']:.0f}/"
                  f"{q['q100']:.0f}. Gold reward vs length on held-out responses, Spearman: "
                  f"{np.mean(syn['gold_length_spearman']):+.4f} (mean over seeds).", "",
                  f"HH-RLHF harmless-base ({hh['pairs']} usable pairs): the chosen response is longer in "
                  f"{hh['longer_chosen_chars']:.4f} of pairs by characters and {hh['longer_chosen_tokens']:.4f} by "
                  f"MiniLM tokens ({hh['equal_tokens']:.4f} equal).", ""]
    for level, s in summary.get("rm", {}).items():
        lines += [f"#### Reward models, length_bias {level} (held-out pairs, gold labels)", "",
                  "| condition | gold accuracy | reward-length Spearman |", "|---|---|---|"]
        lines += [_mean_row(c, m) for c, m in s["mean"].items()]
        lines += ["", HEAD, _paired_row("BT Spearman minus gold's", s["bt_learns_length"])]
        lines += [_paired_row(f"{c} {k}", p) for c, ps in s["paired"].items() for k, p in ps.items()]
        lines.append("")
    if "rloo" in summary:
        r = summary["rloo"]
        lines += [f"#### RLOO against the length_bias {run['primary']} reward models", "",
                  "| reward model | length at start | length at end | gold at start | gold at end | proxy at end | "
                  "KL at end |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {c} | {_fmt(r['start'][c]['val/response_length'])} | {_fmt(f['val/response_length'])} | "
                  f"{_fmt(r['start'][c]['val/gold_reward'])} | {_fmt(f['val/gold_reward'])} | "
                  f"{_fmt(f['val/proxy_reward'])} | {_fmt(f['val/kl'])} |" for c, f in r["final"].items()]
        lines += ["", HEAD, *(_paired_row(f"bsr_1e-3 final {k[4:]}", p) for k, p in r["paired"].items()), ""]
    if "hh" in summary:
        h = summary["hh"]
        lines += ["#### HH-RLHF, claim 1's models (held-out pairs)", "",
                  "| condition | accuracy | reward-length Spearman |", "|---|---|---|"]
        lines += [_mean_row(c, m) for c, m in h["mean"].items()]
        lines += ["", HEAD, _paired_row("bsr_1e-3 reward_length_spearman", h["paired"]["reward_length_spearman"]), ""]
    return "\n".join(lines) + "\n"


def write_report(results: dict, settings: dict, out: Path, seconds: float) -> None:
    """``results.json`` (every run, the summaries, the machine), ``results.md`` and the plot."""
    import matplotlib

    matplotlib.use("Agg")
    from bench_bf16_cpu import machine  # beside this script

    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    if "facts" in results:
        summary["facts"] = results["facts"]
    if "rm" in results:
        gold = results.get("facts", {}).get("synthetic", {}).get("gold_length_spearman")
        if gold is None:
            from reproduce_length import synthetic_facts

            gold = synthetic_facts(settings["seeds"])["gold_length_spearman"]
        summary["rm"] = rm_summary(results["rm"], gold)
    if "rloo" in results:
        summary["rloo"] = rloo_summary(results["rloo"])
        plot_rloo(results["rloo"], out / "claim4_rloo_length.png")
    if "hh" in results:
        summary["hh"] = hh_summary(results["hh"])
    run = {**machine(), "wall_minutes": round(seconds / 60, 1), "runs_minutes": round(run_seconds(results) / 60, 1),
           "seeds": settings["seeds"], "primary": settings["primary"]}
    (out / "results.json").write_text(json.dumps({"run": run, "settings": settings, "summary": summary,
                                                  "runs": results}, indent=1) + "\n")
    (out / "results.md").write_text(markdown(summary, run))
    print(markdown(summary, run))
