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


def test_rewardbench_sections_weight_by_example_counts():
    subsets = ["alpacaeval-easy", "alpacaeval-easy", "mt-bench-med", "donotanswer", "my-own-subset"]
    out = run_pairs([(1, 0), (1, 0), (0, 1), (1, 0), (0, 1)], subsets)
    sections = out["rewardbench"]
    assert sections["Chat"] == pytest.approx(2 / 3)  # not the mean of subset means (0.5)
    assert sections["Safety"] == 1.0 and "Reasoning" not in sections
    assert sections["Score"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert out["per_subset"]["my-own-subset"] == 0.0 and out["accuracy"] == pytest.approx(3 / 5)


def test_rewardbench_reasoning_weighs_math_equal_to_code():
    subsets = ["math-prm"] * 3 + ["hep-go", "hep-rust"]
    out = run_pairs([(1, 0), (1, 0), (1, 0), (0, 1), (1, 0)], subsets)
    assert out["rewardbench"]["Reasoning"] == pytest.approx((1.0 + 0.5) / 2)  # not 4/5


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
