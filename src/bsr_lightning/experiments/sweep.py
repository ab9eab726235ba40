"""Regularizer sweep over the four scenarios: the paper's Table 5 for your model and data.

``python -m bsr_lightning sweep --config cfg.yaml --scenario_dir sc/ --regularizers "[NoRegularizer, BatchSumToZero]"
--seeds "[0, 1]" --output_dir sweep/`` trains one reward model per (regularizer, seed) with ``fit`` on
``sc/train.jsonl`` (validating on ``sc/val1.jsonl``), evaluates Val1 (accuracy) and Val2-Val4 (Kendall tau against
gold), and writes ``table.md``, ``table.csv`` (mean and std over seeds) and ``table.png``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bsr_lightning.backbones.export import export_module
from bsr_lightning.errors import require
from bsr_lightning.evaluation.evaluate import evaluate
from bsr_lightning.files import atomic_write, claim_output_dir, record_outputs, save_figure, write_text_atomic

SCENARIOS = {"val1": ("pairs", "accuracy"), "val2": ("multi", "kendall_tau"), "val3": ("multi", "kendall_tau"),
             "val4": ("multi", "kendall_tau")}
OUTPUTS = ["table.csv", "table.md", "table.png", "results.json"]


def _regularizer_path(name: str) -> str:
    return name if "." in name else f"bsr_lightning.reward.regularizers.{name}"


def train_one(fit: Callable, config: str, scenario_dir: Path, regularizer: str, seed: int, run_dir: Path,
              overrides: list[str]):
    """Fit one reward model with ``fit(args) -> LightningCLI`` and export it to ``run_dir/model``; ``seed`` seeds
    both the model (``seed_everything``) and the order of the training pairs (``data.seed``)."""
    cli = fit(["--config", config, "--seed_everything", str(seed),
                    "--model.regularizer", _regularizer_path(regularizer),
                    "--data", "bsr_lightning.PreferenceDataModule", "--data.path", str(scenario_dir / "train.jsonl"),
                    "--data.val_path", str(scenario_dir / "val1.jsonl"), "--data.seed", str(seed),
                    "--trainer.default_root_dir", str(run_dir),
                    "--trainer.enable_progress_bar", "false", *overrides])
    return export_module(cli.model, run_dir / "model")


def aggregate(results: dict[str, dict[str, list[float]]]) -> list[dict]:
    """Rows ``{regularizer, <scenario>_mean, <scenario>_std}``."""
    rows = []
    for regularizer, per_scenario in results.items():
        row = {"regularizer": regularizer}
        for scenario, values in per_scenario.items():
            row[f"{scenario}_mean"], row[f"{scenario}_std"] = float(np.mean(values)), float(np.std(values))
        rows.append(row)
    return rows


def write_table(rows: list[dict], output_dir: Path) -> None:
    """``table.csv``, ``table.md`` (mean ± std) and a grouped bar chart ``table.png``."""
    with atomic_write(output_dir / "table.csv") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    header = "| regularizer | " + " | ".join(f"{s} ({SCENARIOS[s][1]})" for s in SCENARIOS) + " |"
    lines = [header, "|" + " --- |" * (len(SCENARIOS) + 1)]
    for row in rows:
        cells = " | ".join(f"{row[f'{s}_mean']:.4f} ± {row[f'{s}_std']:.4f}" for s in SCENARIOS)
        lines.append(f"| {row['regularizer']} | {cells} |")
    write_text_atomic(output_dir / "table.md", "\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(rows)
    for k, row in enumerate(rows):
        x = np.arange(len(SCENARIOS)) + k * width
        ax.bar(x, [row[f"{s}_mean"] for s in SCENARIOS], width, yerr=[row[f"{s}_std"] for s in SCENARIOS],
               label=row["regularizer"])
    ax.set_xticks(np.arange(len(SCENARIOS)) + 0.4 - width / 2, [f"{s}\n{m}" for s, (_, m) in SCENARIOS.items()])
    ax.legend()
    fig.tight_layout()
    save_figure(fig, output_dir / "table.png")
    plt.close(fig)


def sweep(fit: Callable, config: str, scenario_dir: str, output_dir: str, regularizers: list[str] | None = None,
          seeds: list[int] | None = None, overrides: list[str] | None = None, overwrite: bool = False) -> list[dict]:
    """Train every regularizer for every seed on the scenario training pairs and tabulate the four scenarios.

    Args:
        fit: runs ``python -m bsr_lightning fit`` with the given arguments and returns the LightningCLI (given by the
            command line).
        config: a ``fit`` config whose model is a RewardModel (its data section is replaced by the scenario files).
        scenario_dir: the output of ``python -m bsr_lightning scenarios``.
        output_dir: runs and tables go here.
        regularizers: class names in ``bsr_lightning.reward.regularizers`` or full import paths.
        seeds: one run per seed and regularizer.
        overrides: extra LightningCLI arguments for every run, e.g. ``["--trainer.max_steps", "100"]``.
        overwrite: write into a folder that holds files sweep did not write (only its outputs are replaced).
    """
    require("matplotlib", "sweep (its plot)")
    regularizers = regularizers or ["NoRegularizer", "BatchSumToZero", "LogitNorm"]
    scenario_dir = Path(scenario_dir)
    out = claim_output_dir(output_dir, OUTPUTS, [], overwrite, "sweep")
    results: dict[str, dict[str, list[float]]] = {}
    for regularizer in regularizers:
        for seed in seeds or [0]:
            run_dir = out / "runs" / f"{regularizer.rsplit('.', 1)[-1]}_seed{seed}"
            model = train_one(fit, config, scenario_dir, regularizer, seed, run_dir, overrides or [])
            for scenario, (fmt, metric) in SCENARIOS.items():
                metrics = evaluate(str(model), str(scenario_dir / f"{scenario}.jsonl"), str(run_dir / scenario), fmt)
                results.setdefault(regularizer, {}).setdefault(scenario, []).append(metrics[metric])
    rows = aggregate(results)
    out.mkdir(parents=True, exist_ok=True)
    write_table(rows, out)
    write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    record_outputs(out, OUTPUTS, dirs=["runs"])
    return rows
