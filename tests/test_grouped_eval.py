"""Evaluation on groups (issue 33): a row's responses scored in one pass with their prompt computed once give the
scores of scoring each response alone, in every format with several responses per prompt; encoders keep the
per-response path."""

import json
from pathlib import Path

import pytest
import torch

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.backbones.export import export_module
from bsr_lightning.evaluation.evaluate import evaluate
from bsr_lightning.reward.scoring import ConversationScorer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def decoder(tiny_llama, tmp_path_factory) -> str:
    torch.manual_seed(0)
    return str(export_module(RewardModel(Backbone(tiny_llama), score_init="normal"),
                             tmp_path_factory.mktemp("rm") / "export"))


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in open(folder / "scores.jsonl")]


@pytest.mark.parametrize("fmt, data", [("multi", "multi.jsonl"), ("rmbench", "rmbench.json"),
                                       ("pairs", "pairs.jsonl"), ("rewardbench", "rewardbench.jsonl")])
def test_grouped_scores_equal_per_response_scores(decoder, fmt, data, tmp_path):
    grouped = evaluate(decoder, str(EXAMPLES / data), str(tmp_path / "grouped"), format=fmt, batch_size=5)
    alone = evaluate(decoder, str(EXAMPLES / data), str(tmp_path / "alone"), format=fmt, batch_size=5,
                     shared_prefix=False)
    a, b = records(tmp_path / "grouped"), records(tmp_path / "alone")
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        for key, value in y.items():
            if isinstance(value, float):
                assert x[key] == pytest.approx(value, abs=1e-5), key
            elif isinstance(value, list) and value and isinstance(value[0], float):
                assert x[key] == pytest.approx(value, abs=1e-5), key
    for key, value in alone.items():
        if isinstance(value, float) and key != "length_policy":
            assert grouped[key] == pytest.approx(value, abs=1e-6), key


def test_the_scorer_groups_only_where_the_model_can(decoder, tiny_bert):
    conversations = [[{"role": "user", "content": "How do I start chess?"},
                      {"role": "assistant", "content": answer}] for answer in ("Learn the moves.", "no", "Play.")]
    module = RewardModel(Backbone(decoder)).eval()
    scorer = ConversationScorer(module, batch_size=8, progress=False)
    assert scorer.groups_share_prefix
    grouped, _, _ = scorer.score_each(conversations, groups=[3])
    alone, _, _ = ConversationScorer(module, batch_size=8, progress=False, shared_prefix=False).score_each(
        conversations, groups=[3])
    assert grouped == pytest.approx(alone, abs=1e-5) and len(set(grouped.round(6))) == 3
    small = ConversationScorer(module, batch_size=4, progress=False)
    assert small._batches([[1] * 5] * 7, [3, 3, 1]) == [[[6], [0, 1, 2]], [[3, 4, 5]]]  # at most 4 sequences
    encoder = ConversationScorer(RewardModel(Backbone(tiny_bert)).eval(), progress=False)
    assert not encoder.groups_share_prefix  # encoders see both directions: each response alone
