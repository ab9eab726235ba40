"""Hidden-state diagnostics of Hong et al. 2025 for one or several reward models on one preference dataset.

``python -m bsr_lightning diagnose --models BT_DIR BSR_DIR --labels BT BSR --data F --output_dir D`` writes
``D/diagnostics.json``, ``D/diagnostics.md`` and PNG plots that overlay the models: the norm of the head-input hidden
state ``||h||``, ``||h_chosen - h_rejected||``, the cosine between ``h`` and the head weight ``W``, and the rewards;
and ``reward_vs_length.png``, each model's rewards against its responses' lengths in tokens, with their Spearman
correlation (``reward_length_spearman`` in the summary).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from bsr_lightning.backbones.loading import find_score_head
from bsr_lightning.data.loading import iter_raw_rows, local_files
from bsr_lightning.data.preference import collect_pairs
from bsr_lightning.errors import check, require
from bsr_lightning.evaluation.length import response_tokens
from bsr_lightning.evaluation.metrics import spearman_rho
from bsr_lightning.evaluation.report import markdown_table
from bsr_lightning.files import claim_output_dir, record_outputs, save_figure, write_text_atomic
from bsr_lightning.reward.scoring import ConversationScorer, load_reward_model

PLOTS = ("hidden_norm", "pair_hidden_distance", "cos_h_w", "reward")
OUTPUTS = ["diagnostics.json", "diagnostics.md", *(f"{key}.png" for key in PLOTS), "reward_vs_length.png"]


def effective_rank(hidden: np.ndarray) -> float:
    """``exp`` of the entropy of the normalized singular values of ``hidden`` ``(N, H)`` (Roy & Vetterli 2007)."""
    singular = np.linalg.svd(hidden, compute_uv=False)
    p = singular / singular.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def head_weight(module) -> np.ndarray:
    """``(H,)`` weight of the score head's last linear layer."""
    import torch

    linear = [m for m in find_score_head(module.backbone).modules() if isinstance(m, torch.nn.Linear)][-1]
    return linear.weight.detach().float().cpu().numpy().reshape(-1)


def model_diagnostics(module, conversations: list, batch_size: int, max_length: int) -> dict[str, np.ndarray]:
    """Per-sequence arrays for ``conversations`` ordered chosen_0..chosen_{B-1}, rejected_0..rejected_{B-1}."""
    scorer = ConversationScorer(module, batch_size, max_length)
    scores, hidden = scorer.score_with_hidden(conversations, "diagnose")
    w = head_weight(module)
    h_chosen, h_rejected = np.split(hidden, 2)
    r_chosen, r_rejected = np.split(scores, 2)
    norms = np.linalg.norm(hidden, axis=1)
    distance = np.linalg.norm(h_chosen - h_rejected, axis=1)
    lengths = response_tokens(module.tokenizer, conversations, scorer.encoder.cap_characters)
    return {"reward": scores, "response_tokens": lengths, "reward_length_spearman": spearman_rho(scores, lengths),
            "hidden_norm": norms, "pair_hidden_distance": distance,
            "cos_h_w": hidden @ w / (norms * np.linalg.norm(w) + 1e-12), "head_weight_norm": np.linalg.norm(w),
            "effective_rank": effective_rank(hidden), "accuracy": float(np.mean(r_chosen > r_rejected))}


def summarize(arrays: dict) -> dict[str, float]:
    out = {}
    for key, value in arrays.items():
        if np.ndim(value) == 0:
            out[key] = float(value)
        else:
            out[f"{key}_mean"], out[f"{key}_std"] = float(np.mean(value)), float(np.std(value))
    return out


def plot_overlays(results: dict[str, dict], output_dir: Path) -> list[Path]:
    """One PNG per per-sequence quantity, a histogram per model overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key in PLOTS:
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, arrays in results.items():
            ax.hist(arrays[key], bins=40, alpha=0.5, density=True, label=label)
        ax.set(title=key.replace("_", " "), xlabel=key, ylabel="density")
        ax.legend()
        fig.tight_layout()
        paths.append(output_dir / f"{key}.png")
        save_figure(fig, paths[-1])
        plt.close(fig)
    return paths


def plot_reward_vs_length(results: dict[str, dict], output_dir: Path) -> Path:
    """One PNG: every model's rewards against its responses' tokens, with the Spearman correlation in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, arrays in results.items():
        ax.scatter(arrays["response_tokens"], arrays["reward"], s=6, alpha=0.5,
                   label=f"{label} (Spearman {arrays['reward_length_spearman']:.2f})")
    ax.set(title="reward against response length", xlabel="response tokens", ylabel="reward")
    ax.legend()
    fig.tight_layout()
    path = output_dir / "reward_vs_length.png"
    save_figure(fig, path)
    plt.close(fig)
    return path


def diagnose(models: list[str], data: str, output_dir: str, labels: list[str] | None = None, split: str = "train",
             max_pairs: int = 1000, batch_size: int = 16, max_length: int = 512,
             overwrite: bool = False) -> dict[str, dict[str, float]]:
    """Compare hidden-state statistics of reward models on one preference dataset.

    Args:
        models: exported directories or ``.ckpt`` files.
        data: preference data (any format the data module reads).
        output_dir: where plots, ``diagnostics.json`` and ``diagnostics.md`` go.
        labels: names for the models in plots (default: the paths).
        split: hub split.
        max_pairs: use the first N pairs.
        batch_size: sequences per forward pass.
        max_length: the longest sequence; longer ones are truncated on the left.
        overwrite: write into a folder that holds files diagnose did not write (only its outputs are replaced).
    """
    require("matplotlib", "diagnose (its plots)")
    labels = labels or models
    check(len(labels) == len(models), "labels", f"{len(labels)} labels for {len(models)} models; give one label per "
                                                "model.")
    for key, value, least in (("max_pairs", max_pairs, 1), ("batch_size", batch_size, 1), ("max_length", max_length,
                                                                                                2)):
        check(value >= least, key, f"must be at least {least}, got {value}.")
    out = claim_output_dir(output_dir, OUTPUTS, local_files(data) or [], overwrite, "diagnose")
    pairs = collect_pairs(iter_raw_rows(data, split=split), "error", data)[:max_pairs]
    conversations = [p.prompt + p.chosen for p in pairs] + [p.prompt + p.rejected for p in pairs]
    results = {label: model_diagnostics(load_reward_model(m), conversations, batch_size, max_length)
               for label, m in zip(labels, models, strict=True)}
    out.mkdir(parents=True, exist_ok=True)
    summary = {label: summarize(arrays) for label, arrays in results.items()}
    write_text_atomic(out / "diagnostics.json", json.dumps(summary, indent=2))
    plots = [*plot_overlays(results, out), plot_reward_vs_length(results, out)]
    tables = "\n\n".join(f"## {label}\n\n{markdown_table(list(s.items()))}" for label, s in summary.items())
    images = "\n".join(f"![{p.stem}]({p.name})" for p in plots)
    write_text_atomic(out / "diagnostics.md", f"# Hidden-state diagnostics on {data} ({len(pairs)} pairs)\n\n"
                                              f"{tables}\n\n{images}\n")
    record_outputs(out, OUTPUTS)
    print(f"diagnose: wrote diagnostics.json, diagnostics.md and {len(plots)} plots to {out}", file=sys.stderr)
    return summary
