"""Regenerate every number and plot of docs/reproduction.md: the paper's three claims at small scale, on CPU.

    python scripts/reproduce.py --output_dir docs/reproduction --work_dir artifacts/reproduction

The protocol (data, sizes, seeds, the decision rule) is docs/reproduction.md's, fixed before the first run.

* Claim 1 (over-optimization and hidden-state norms): MiniLM-L6 on the HH-RLHF pairs beside the repo, 4 epochs on
  random batches, validated every half epoch; BT, BSR 1e-3 and BSR 1e-2.
* Claim 2 (four scenarios): the generated task's responses from five generating policies (topics are the prompt
  families), split by ``scenarios``; ``sweep`` trains tiny reward models and scores Val1 (accuracy) and Val2-Val4
  (Kendall tau over 4 responses against the gold reward).
* Claim 3 (RLOO): the tiny SFT policy trained with RLOO against claim 2's BT and BSR 1e-3 reward models of each
  seed, gold reward and KL logged on held-out prompts.

Each finished run leaves ``result.json`` in its folder under ``--work_dir``; a rerun skips it. Then
:mod:`reproduce_report` writes ``results.json``, ``results.md`` and the plots into ``--output_dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
from rloo_demo import last_metrics  # noqa: E402  beside this script: the newest metrics.csv under a root

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
HH = REPO.parent / "shared" / "data" / "hh_rlhf_harmless_base_test.jsonl.gz"
REGS = "bsr_lightning.reward.regularizers"
CONDITIONS = {"bt": [f"{REGS}.NoRegularizer"],
              "bsr_1e-3": [f"{REGS}.BatchSumToZero", "--model.regularizer.init_args.weight", "0.001"],
              "bsr_1e-2": [f"{REGS}.BatchSumToZero", "--model.regularizer.init_args.weight", "0.01"]}
CLAIM1 = {"max_pairs": 640, "val_fraction": 0.25, "max_length": 64, "epochs": 4}
SCENARIOS = {"per_generator": 3, "group_fraction": 0.25, "generator_fraction": 0.4, "val1_fraction": 0.15, "seed": 0}
RLOO_STEPS = 300


def cli(args: list[str]):
    from bsr_lightning.cli import cli_main

    print("+ python -m bsr_lightning " + " ".join(args), flush=True)
    return cli_main(args)


def column(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """``{step, key...}`` of every row that has ``keys[0]``."""
    return [{"step": int(r["step"]), **{k: float(r[k]) for k in keys}} for r in rows if r.get(keys[0])]


def cached(folder: Path, make) -> dict:
    """``folder/result.json``, computed with ``make()`` when missing; checkpoints in ``folder`` are removed after."""
    path = folder / "result.json"
    if path.exists():
        return json.loads(path.read_text())
    started = time.perf_counter()
    result = {**make(), "seconds": round(time.perf_counter() - started, 1)}
    for ckpt in folder.rglob("*.ckpt"):
        ckpt.unlink()  # written by this run's PeriodicCheckpoint; the curves are in metrics.csv
    path.write_text(json.dumps(result))
    return result


def claim1_fit(root: Path, reg: list[str], seed: int, limits: list[str], *extra: str) -> None:
    """One claim-1 reward model: MiniLM-L6 on the HH-RLHF pairs beside the repo, sized by :data:`CLAIM1`."""
    cli(["fit", "--config", str(CONFIGS / "reward/hh_rlhf_minilm.yaml"), "--data.path", str(HH),
         "--data.max_pairs", str(CLAIM1["max_pairs"]), "--data.val_fraction", str(CLAIM1["val_fraction"]),
         "--data.max_length", str(CLAIM1["max_length"]), "--data.seed", str(seed),
         "--seed_everything", str(seed), "--model.regularizer", *reg,
         "--trainer.max_epochs", str(CLAIM1["epochs"]), "--trainer.val_check_interval", "0.5",
         "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false", *limits, *extra])


def claim1(work: Path, seeds: list[int], quick: bool) -> dict:
    keys = ("val/accuracy", "val/hidden_norm_mean", "val/hidden_norm_std", "val/reward_mean", "val/reward_std")
    limits = ["--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "1"] if quick else []
    out = {}
    for cond, reg in CONDITIONS.items():
        for seed in seeds:
            root = work / "claim1" / f"{cond}_seed{seed}"

            def make(root=root, reg=reg, seed=seed) -> dict:
                claim1_fit(root, reg, seed, limits)
                rows = last_metrics(root)
                return {"val": column(rows, keys), "train_accuracy": column(rows, ("train/accuracy",))}

            out.setdefault(cond, []).append(cached(root, make))
    return out


def scenario_files(work: Path) -> Path:
    from bsr_lightning.experiments.scenarios_command import scenarios
    from bsr_lightning.synthetic_task import generator_response_table

    folder = work / "claim2" / "scenarios"
    if not (folder / "report.json").exists():
        table = work / "claim2" / "responses.jsonl"
        table.parent.mkdir(parents=True, exist_ok=True)
        rows = generator_response_table(SCENARIOS["per_generator"], SCENARIOS["seed"])
        table.write_text("".join(json.dumps(r) + "\n" for r in rows))
        scenarios(str(table), str(folder), group_column="topic", generator_column="generator",
                  group_fraction=SCENARIOS["group_fraction"], generator_fraction=SCENARIOS["generator_fraction"],
                  val1_fraction=SCENARIOS["val1_fraction"], seed=SCENARIOS["seed"])
    return folder


def claim2(work: Path, seeds: list[int], quick: bool) -> dict:
    """``{condition: {val1..val4: [per seed]}}`` from ``sweep`` (one sweep per regularizer setting)."""
    folder = scenario_files(work)
    limits = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"] if quick else []
    out = {}
    for cond, reg in CONDITIONS.items():
        sweep_dir = work / "claim2" / cond

        def make(sweep_dir=sweep_dir, reg=reg) -> dict:
            args = ["sweep", "--config", str(CONFIGS / "reward/synthetic_tiny.yaml"), "--scenario_dir", str(folder),
                    "--output_dir", str(sweep_dir), "--regularizers", json.dumps(reg[:1]), "--seeds", json.dumps(seeds),
                    "--overrides", json.dumps([*reg[1:], "--trainer.callbacks", "[]", *limits])]
            cli(args)
            return json.loads((sweep_dir / "results.json").read_text())[reg[0]]

        out[cond] = cached(sweep_dir, make)
    out["report"] = json.loads((folder / "report.json").read_text())
    return out


def reward_model(work: Path, cond: str, seed: int) -> Path:
    return work / "claim2" / cond / "runs" / f"{CONDITIONS[cond][0].rsplit('.', 1)[-1]}_seed{seed}" / "model"


def sft_policy(folder: Path, quick: bool) -> Path:
    """The tiny SFT policy, trained once into ``folder/sft_policy`` (its logs in ``folder/sft``)."""
    sft = folder / "sft_policy"
    quick_sft = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"] if quick else []
    if not (sft / "config.json").exists():
        cli(["fit", "--config", str(CONFIGS / "sft/synthetic_tiny.yaml"), "--trainer.default_root_dir",
             str(folder / "sft"), "--trainer.callbacks.output_dir", str(sft),
             "--trainer.enable_progress_bar", "false", *quick_sft])
    return sft


RLOO_KEYS = ("val/gold_reward", "val/kl", "val/proxy_reward", "val/response_length")


def rloo_run(root: Path, sft: Path, reward: Path, seed: int, quick: bool, *extra: str) -> list[dict]:
    """Validate the SFT policy (step 0), then RLOO against ``reward``; the held-out curve of :data:`RLOO_KEYS`."""
    limits = ["--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1"] if quick else []
    common = ["--config", str(CONFIGS / "rloo/synthetic_tiny.yaml"), "--seed_everything", str(seed),
              "--model.backbone.name", str(sft), "--model.reward.path", str(reward),
              "--trainer.enable_progress_bar", "false", *extra, *limits]
    cli(["validate", *common, "--trainer.default_root_dir", str(root / "start")])
    cli(["fit", *common, "--trainer.default_root_dir", str(root), "--trainer.max_steps",
         str(4 if quick else RLOO_STEPS), "--trainer.callbacks.output_dir", str(root / "policy")])
    start = column(last_metrics(root / "start"), RLOO_KEYS)
    return [{**start[-1], "step": 0}, *column(last_metrics(root), RLOO_KEYS)]


def claim3(work: Path, seeds: list[int], quick: bool) -> dict:
    sft = sft_policy(work / "claim3", quick)
    out = {}
    for cond in ("bt", "bsr_1e-3"):
        for seed in seeds:
            root = work / "claim3" / f"{cond}_seed{seed}"

            def make(root=root, cond=cond, seed=seed) -> dict:
                return {"val": rloo_run(root, sft, reward_model(work, cond, seed), seed, quick),
                        "train": column(last_metrics(root), ("train/kl", "train/gold_reward", "train/proxy_reward"))}

            out.setdefault(cond, []).append(cached(root, make))
    return out


def work_dir(path: str, quick: bool) -> Path:
    """The runs' folder: a quick run's earlier folder (marked ``.quick``) is cleared, never a real one."""
    work = Path(path)
    if quick and work.exists() and (work / ".quick").exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if quick:
        (work / ".quick").touch()
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="docs/reproduction", help="results.json, results.md and plots")
    parser.add_argument("--work_dir", default="artifacts/reproduction", help="the runs (a rerun skips finished ones)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--claims", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    parser.add_argument("--quick", action="store_true", help="a few steps of every run (smoke test, not results)")
    args = parser.parse_args()
    from reproduce_report import write_report  # beside this script

    work, started = work_dir(args.work_dir, args.quick), time.perf_counter()
    results = {}
    if 1 in args.claims:
        results["claim1"] = claim1(work, args.seeds, args.quick)
    if 2 in args.claims or 3 in args.claims:
        results["claim2"] = claim2(work, args.seeds, args.quick)
    if 3 in args.claims:
        results["claim3"] = claim3(work, args.seeds, args.quick)
    settings = {"claim1": CLAIM1, "scenarios": SCENARIOS, "rloo_steps": RLOO_STEPS, "seeds": args.seeds,
                "quick": args.quick}
    write_report(results, settings, Path(args.output_dir), time.perf_counter() - started)


if __name__ == "__main__":
    main()
