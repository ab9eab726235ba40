import pytest
import torch

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.data.collate import pad_sequences
from bsr_lightning.reward.regularizers import BatchSumToZero

TEXTS = ["hello world", "How do I get started with chess? Start with small steps.", "a",
         "Practice a little every day. Keep notes on your progress. Find a friend to learn with."]


def encode(model: RewardModel, texts: list[str]) -> list:
    tok = model.tokenizer
    return [tok(t + tok.eos_token if tok.chat_template else t)["input_ids"] for t in texts]


def one_by_one(model, seqs) -> torch.Tensor:
    return torch.cat([model.score(torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long)) for s in seqs])


@pytest.mark.parametrize("side", ["left", "right"])
def test_decoder_padded_scores_equal_unpadded(tiny_llama, side):
    model = RewardModel(Backbone(tiny_llama), score_init="normal").eval()
    seqs = encode(model, TEXTS)
    assert seqs[0][-1] == model.tokenizer.eos_token_id  # the token scored is EOS, which the old pad equalled
    ids, mask = pad_sequences(seqs, model.tokenizer.pad_token_id, side)
    assert torch.allclose(model.score(ids, mask), one_by_one(model, seqs), atol=1e-4)


def test_encoder_padded_scores_equal_unpadded(tiny_bert):
    model = RewardModel(Backbone(tiny_bert)).eval()
    assert model.tokenizer.padding_side == "right" and model.pooling == "first"
    seqs = encode(model, TEXTS)
    ids, mask = pad_sequences(seqs, model.tokenizer.pad_token_id, "right")
    assert torch.allclose(model.score(ids, mask), one_by_one(model, seqs), atol=1e-4)


def test_hidden_state_is_the_head_input(tiny_llama):
    model = RewardModel(Backbone(tiny_llama)).eval()
    seqs = encode(model, TEXTS[:2])
    ids, mask = pad_sequences(seqs, model.tokenizer.pad_token_id, "right")
    with torch.no_grad():
        rewards, hidden = model(ids, mask)
    head = model.backbone.score
    assert hidden.shape == (2, 32)
    assert torch.allclose(head(hidden).squeeze(-1), rewards, atol=1e-5)


def test_dropout_is_off_and_score_init_normal(tiny_bert):
    model = RewardModel(Backbone(tiny_bert), score_init="normal")
    assert model.backbone.config.hidden_dropout_prob == 0.0
    assert model.backbone.training
    weight = model.backbone.classifier.weight
    assert model.backbone.classifier.bias.abs().sum() == 0
    assert 0.05 < weight.std().item() < 0.3  # 1/sqrt(33) = 0.174


def test_pair_step_loss_is_bt_plus_penalty(tiny_llama):
    model = RewardModel(Backbone(tiny_llama), regularizer=BatchSumToZero(weight=0.5)).eval()
    seqs = encode(model, TEXTS)
    ids, mask = pad_sequences(seqs, model.tokenizer.pad_token_id, "right")
    out = model.pair_step({"input_ids": ids, "attention_mask": mask})
    rewards = model.score(ids, mask)
    c, r = rewards[:2], rewards[2:]
    expected = torch.nn.functional.softplus(r - c).mean() + 0.5 * 2 * rewards.mean() ** 2
    assert out["loss"].item() == pytest.approx(expected.item(), abs=1e-5)
    assert out["values"]["accuracy"].tolist() == (c > r).float().tolist()
    assert out["hidden_norms"].shape == (4,)


def test_the_reward_length_correlation_by_hand():
    """Issue 34, item 9: ``val/reward_length_corr`` is Pearson's r of rewards and sequence lengths, from running
    sums: [1, 2, 3] against [2, 4, 6] is 1, against [3, 2, 1] -1, against a constant NaN."""
    import math

    import torch

    from bsr_lightning.reward.metrics import Correlation

    for lengths, expected in (([2.0, 4.0, 6.0], 1.0), ([3.0, 2.0, 1.0], -1.0)):
        metric = Correlation()
        metric.update(torch.tensor([1.0, 2.0]), torch.tensor(lengths[:2]))
        metric.update(torch.tensor([3.0]), torch.tensor(lengths[2:]))
        assert metric.compute().item() == pytest.approx(expected, abs=1e-6)
    flat = Correlation()
    flat.update(torch.tensor([1.0, 2.0]), torch.tensor([5.0, 5.0]))
    assert math.isnan(flat.compute().item())
