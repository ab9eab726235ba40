"""The evaluation numbers by hand, through the evaluators that ``evaluate`` runs."""

import math

import numpy as np
import pytest

from bsr_lightning.evaluation.evaluators import MultiEvaluator, PairsEvaluator
from bsr_lightning.evaluation.metrics import (
    best_of_n_regret,
    kendall_tau_b,
    rmbench_matrix,
    rmbench_summary,
    spearman_rho,
)
from bsr_lightning.evaluation.rewardbench import RewardBenchEvaluator


def run_pairs(scores: list[tuple[float, float]], subsets: list[str] | None = None) -> dict:
    """PairsEvaluator over one pair per ``(chosen, rejected)`` score, in ``subsets``."""
    evaluator = PairsEvaluator()
    for i, (chosen, rejected) in enumerate(scores):
        row = {"prompt": "q", "chosen": "good", "rejected": "bad", "subset": subsets[i] if subsets else None}
        evaluator.update(evaluator.parse(row, i, f"f:{i + 1}"), np.array([chosen, rejected]))
    return evaluator.result()


def run_multi(predicted: list[list[float]], gold: list[list[float]]) -> dict:
    evaluator = MultiEvaluator()
    for i, (p, g) in enumerate(zip(predicted, gold, strict=True)):
        row = {"prompt": "q", "responses": [f"r{j}" for j in range(len(g))], "scores": g}
        evaluator.update(evaluator.parse(row, i, f"f:{i + 1}"), np.array(p, dtype=float))
    return evaluator.result()


def test_accuracy_counts_ties_as_wrong():
    assert run_pairs([(1.0, 0.0), (2.0, 2.0), (3.0, 1.0), (0.0, 5.0)])["accuracy"] == 0.5


def test_dropped_pairs_score_nan_and_count_as_wrong():
    assert run_pairs([(1.0, 0.0), (float("nan"), 0.0)])["accuracy"] == 0.5


def test_kendall_tau_b_by_hand():
    assert kendall_tau_b([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)  # 2 concordant, 1 discordant of 3
    assert kendall_tau_b([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(2 * 3))  # one tie in x
    assert kendall_tau_b([3, 2, 1], [1, 2, 3]) == -1.0
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))


def test_spearman_by_hand():
    assert spearman_rho([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # 1 - 6 * 2 / (3 * 8)
    assert spearman_rho([10, 20, 20, 30], [1, 2, 3, 4]) == pytest.approx(0.9486833)  # ties get mean rank 2.5


def test_best_of_n_regret_and_nan_prompts_are_counted_not_averaged():
    assert best_of_n_regret([0.1, 0.9, 0.5], [3.0, 1.0, 2.0]) == 2.0
    out = run_multi([[1, 2, 3], [5, 5, 5]], [[1, 3, 2], [1, 2, 3]])
    assert out["kendall_tau"] == pytest.approx(1 / 3) and out["prompts_with_nan_tau"] == 1 and out["prompts"] == 2
    assert out["best_of_n_regret"] == pytest.approx((1.0 + 2.0) / 2)


def run_rewardbench(scores: list[tuple[float, float]], subsets: list[str]) -> dict:
    evaluator = RewardBenchEvaluator()
    for i, ((chosen, rejected), subset) in enumerate(zip(scores, subsets, strict=True)):
        row = {"prompt": "q", "chosen": "good", "rejected": "bad", "subset": subset}
        evaluator.update(evaluator.parse(row, i, f"f:{i + 1}"), np.array([chosen, rejected]))
    return evaluator.result()


def test_rewardbench_sections_weight_by_fixed_example_counts():
    subsets = ["alpacaeval-easy", "alpacaeval-easy", "mt-bench-med", "donotanswer", "my-own-subset"]
    out = run_rewardbench([(1, 0), (1, 0), (0, 1), (1, 0), (0, 1)], subsets)
    # alpacaeval-easy 2/2 weighs 100, mt-bench-med 0/1 weighs 40: not the observed counts' 2/3
    assert out["Chat"] == pytest.approx(100 / 140)
    assert out["Safety"] == 1.0 and out["Chat Hard"] == 0.0 and out["Reasoning"] == 0.0  # empty sections score 0
    assert math.isnan(out["Prior Sets"])
    assert out["Score"] == pytest.approx((100 / 140 + 1.0) / 4)  # four sections, weight 2 each
    assert out["per_subset"]["my-own-subset"] == 0.0 and out["subsets_outside_the_score"] == ["my-own-subset"]


def test_rewardbench_prior_sets_and_retired_subsets():
    subsets = ["anthropic_helpful", "anthropic_helpful", "shp", "pku_safer", "math-prm"]
    out = run_rewardbench([(1, 0), (0, 1), (1, 0), (1, 0), (2, 2)], subsets)  # the math-prm tie is wrong
    assert out["Prior Sets"] == pytest.approx((0.5 + 1.0) / 2)  # mean over the present prior sets
    assert out["Score"] == pytest.approx(0.75 / 9)  # (2*0 * 4 sections + 1 * 0.75) / 9
    assert out["retired_rows_left_out"] == {"pku_safer": 1} and "pku_safer" not in out["per_subset"]


def test_rmbench_matrix_by_hand():
    chosen = np.array([[3.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
    rejected = np.array([[0.0, 2.5, 1.5], [0.0, 0.0, 2.0]])
    m = rmbench_matrix(chosen, rejected)
    # row 0: chosen 3 beats all; 2 beats 0 and 1.5; 1 beats 0. row 1: 1 beats 0, 0, not 2.
    expected = np.array([[1.0, 1.0, 0.5], [1.0, 0.5, 0.5], [1.0, 0.5, 0.0]])
    assert np.allclose(m, expected)
    summary = rmbench_summary(m)
    assert summary["hard"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    assert summary["normal"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert summary["easy"] == pytest.approx((1.0 + 1.0 + 0.5) / 3)
