"""``evaluate --format rewardbench2`` against RewardBench 2's own scoring (issue 34, item 1): the wheel's
``reroll_and_score_dataset`` and ``process_single_model`` (with ``sample_stats``), run unchanged on the same scores,
on fixtures with tied scores, several chosen completions, a Ties subset and a missing subset."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import Dataset

from bsr_lightning.evaluation.evaluate import stream_scores
from bsr_lightning.evaluation.rewardbench2 import RewardBench2Evaluator, best_of_n, ties_score
from test_benchmark_fidelity import NumberScorer
from upstream import function

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rewardbench2.jsonl"


def rows() -> list[dict]:
    """Completions written as their scores (:class:`NumberScorer`): best-of-4 with ties at the top, a first
    completion that loses, a Ties subset with ref:/tied: ids and several correct completions; no Focus rows."""
    spec = {"Factuality": [[3, 1, 2, 0], [2, 2, 1, 0], [1, 3, 0, 0], [2, 2, 2, 2]],
            "Precise IF": [[1, 0, 0, 0]], "Math": [[0, 1, 0, 0], [5, 5, 5, 1]], "Safety": [[1, 0.5, 0.5, 0]]}
    out = []
    for subset, groups in spec.items():
        for i, scores in enumerate(groups):
            out.append({"id": f"{subset}-{i}", "prompt": f"q{i}", "chosen": [str(scores[0])],
                        "rejected": [str(s) for s in scores[1:]], "num_correct": 1, "subset": subset,
                        "total_completions": len(scores)})
    ties = {"ref:0": ([3, 2.5], [1, 0]), "tied:0": ([3, 2, 2.8], [1.5, 0.5]), "ref:1": ([1], [2, 0]),
            "tied:1": ([2, 2], [1, 0]), "ref:2": ([4, 3], [2]), "tied:2": ([4, 1], [2, 3]), "tied:3": ([1, 1], [0])}
    for rid, (chosen, rejected) in ties.items():
        out.append({"id": rid, "prompt": f"t{rid}", "chosen": [str(c) for c in chosen],
                    "rejected": [str(r) for r in rejected], "num_correct": len(chosen), "subset": "Ties",
                    "total_completions": len(chosen) + len(rejected)})
    return out


def ours(data: list[dict]) -> tuple[dict, list[dict]]:
    lines: list[str] = []

    class Sink:
        def write(self, line):
            lines.append(line)

    where_rows = [(f"rows.jsonl:{i + 1}", row) for i, row in enumerate(data)]
    metrics = stream_scores(NumberScorer(), RewardBench2Evaluator(), iter(where_rows), Sink(), progress=False)
    return metrics, [json.loads(line) for line in lines]


def upstream(data: list[dict]) -> dict:
    """Per-subset scores as ``scripts/run_v2.py`` computes them, with the wheel's own functions."""
    namespace = {"np": np, "pd": pd, "Dataset": Dataset, "math": math}
    reroll = function("rewardbench/utils.py", "reroll_and_score_dataset", namespace)
    namespace["sample_stats"] = function("rewardbench/utils.py", "sample_stats", namespace)
    process = function("rewardbench/utils.py", "process_single_model", namespace)
    unrolled = [{"text": text, "scores": float(text), "subset": row["subset"], "id": row["id"]}
                for row in data for text in [*row["chosen"], *row["rejected"]]]
    scored = reroll(Dataset.from_list(unrolled), [row["total_completions"] for row in data],
                    cols_to_combine=["text", "scores"])
    scored = scored.add_column("num_correct", [row["num_correct"] for row in data])
    out = {}
    for subset in np.unique([row["subset"] for row in data]):
        part = scored.filter(lambda example, s=subset: example["subset"] == s)
        out[str(subset)] = process(part)[1] if subset == "Ties" else sum(part["results"]) / len(part["results"])
    return out


def test_subset_scores_and_the_ties_score_equal_rewardbench2():
    data = rows()
    metrics, records = ours(data)
    expected = upstream(data)
    assert metrics["per_subset"].keys() == expected.keys()
    for subset, value in expected.items():
        assert metrics["per_subset"][subset] == pytest.approx(value, abs=1e-12), subset
    assert metrics["subsets_missing"] == ["Focus"]
    assert metrics["Score"] == pytest.approx(np.mean(list(expected.values())))
    # by hand: Factuality 1 + 1/2 + 0 + 1/4 over 4 prompts; Math 0 and 1/3
    assert metrics["per_subset"]["Factuality"] == pytest.approx(1.75 / 4)
    assert metrics["per_subset"]["Math"] == pytest.approx(1 / 6)
    first = records[0]
    assert first["id"] == "Factuality-0" and first["scores"] == [3.0, 1.0, 2.0, 0.0] and first["result"] == 1.0


def test_the_ties_rule_by_hand():
    # one prompt with both kinds: ref accurate (min correct 1 > max incorrect 0), tied accurate (2 > 1), tied spread
    # 3 - 2 = 1 and margin 2 - 1 = 1: not preferred (1 > 1 is false), ratio min(1, 1) / 1 = 1, tanh(0) = 0
    score = ties_score([("ref:0", [1.0, 0.0], 1), ("tied:0", [3.0, 2.0, 1.0], 2)])
    assert score == pytest.approx(0.3 + 0.3)
    assert best_of_n(np.array([2.0, 2.0, 1.0])) == 0.5 and best_of_n(np.array([1.0, 2.0])) == 0.0


def test_the_example_file_runs_end_to_end(tiny_llama, tmp_path):
    import torch

    from bsr_lightning import Backbone, RewardModel
    from bsr_lightning.backbones.export import export_module
    from bsr_lightning.evaluation.evaluate import evaluate

    torch.manual_seed(0)
    model = str(export_module(RewardModel(Backbone(tiny_llama), score_init="normal"), tmp_path / "rm"))
    metrics = evaluate(model, str(EXAMPLE), str(tmp_path / "out"), format="rewardbench2")
    assert set(metrics["per_subset"]) == {"Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties"}
    assert 0 <= metrics["Score"] <= 1 and metrics["subsets_missing"] == []
    length = metrics["length"]  # the same rule for length-only scorers, beside the model's
    assert set(length["longest_wins"]["per_subset"]) == set(metrics["per_subset"])
    assert 0 <= length["shortest_wins"]["Score"] <= 1 and -1 <= length["reward_length_spearman"] <= 1
    record = json.loads(open(tmp_path / "out" / "scores.jsonl").readline())
    assert {"id", "subset", "scores"} <= record.keys() and len(record["scores"]) >= 2


def test_a_bad_row_names_itself():
    bad = {**rows()[0], "num_correct": 9}
    with pytest.raises(ValueError, match="num_correct"):
        ours([bad])
    with pytest.raises(ValueError, match="ref:N"):
        ours([{**rows()[-1], "id": "tied-3"}])
