"""Length in every evaluation (issue 34, item 9): each format's own rule applied to length-only scorers (shortest
wins, longest wins), and the reward-length Spearman correlation overall and within prompts."""

import numpy as np
import pytest

from bsr_lightning.evaluation.evaluators import PairsEvaluator
from bsr_lightning.evaluation.length import LengthBaselines


def words(texts, add_special_tokens=False):
    return {"input_ids": [t.split() for t in texts]}


def test_length_only_scorers_and_correlations_by_hand():
    # (chosen, rejected) response lengths (5, 2), (3, 4), (6, 1): longest wins 2 of 3 pairs, shortest 1 of 3;
    # rewards (1, 0), (0.2, 0.9), (2, -1) rank exactly as the lengths: rho 1 overall and within every pair
    baselines = LengthBaselines(PairsEvaluator, words)
    evaluator = PairsEvaluator()
    for i, ((c, r), rewards) in enumerate(zip([(5, 2), (3, 4), (6, 1)], [(1.0, 0.0), (0.2, 0.9), (2.0, -1.0)],
                                              strict=True)):
        item = evaluator.parse({"prompt": "q", "chosen": "w " * c, "rejected": "w " * r}, i, f"row {i}")
        lengths = baselines.lengths_of(evaluator.conversations(item))
        assert lengths.tolist() == [c, r]
        baselines.update(item, np.array(rewards), lengths)
    result = baselines.result()
    assert result["longest_wins"]["accuracy"] == pytest.approx(2 / 3)
    assert result["shortest_wins"]["accuracy"] == pytest.approx(1 / 3)
    assert result["reward_length_spearman"] == pytest.approx(1.0)
    assert result["reward_length_spearman_within_prompts"] == pytest.approx(1.0)
    assert result["mean_response_tokens"] == pytest.approx(21 / 6)


def test_equal_lengths_are_ties_and_count_as_wrong():
    baselines = LengthBaselines(PairsEvaluator, words)
    item = PairsEvaluator().parse({"prompt": "q", "chosen": "a b", "rejected": "c d"}, 0, "row 0")
    baselines.update(item, np.array([1.0, 0.0]), np.array([2.0, 2.0]))
    result = baselines.result()
    assert result["longest_wins"]["accuracy"] == 0.0 and result["shortest_wins"]["accuracy"] == 0.0
    assert np.isnan(result["reward_length_spearman_within_prompts"])
