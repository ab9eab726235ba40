import math
import warnings

import pytest
import torch

from bsr_lightning.reward.regularizers import (
    BatchSumToZero,
    HiddenNormVariance,
    LogitNorm,
    NoRegularizer,
    PairOutputs,
    Regularizer,
    RewardCentering,
)

C = torch.tensor([1.0, 2.0])
R = torch.tensor([0.0, -1.0])


def pair(chosen, rejected, chosen_hidden=None, rejected_hidden=None) -> PairOutputs:
    chosen, rejected = torch.as_tensor(chosen, dtype=torch.float32), torch.as_tensor(rejected, dtype=torch.float32)
    zeros = torch.zeros(len(chosen), 2)
    return PairOutputs(chosen, rejected, zeros if chosen_hidden is None else chosen_hidden,
                       zeros if rejected_hidden is None else rejected_hidden)


def test_no_regularizer_is_plain_bt():
    reg = NoRegularizer()
    assert torch.equal(reg.margin(pair(C, R)), torch.tensor([1.0, 3.0]))
    assert reg.penalty(pair(C, R)).item() == 0.0


def test_bsr_penalty_by_hand():
    # rewards (1, 2, 0, -1): mean 0.5, B = 2 pairs -> 1e-3 * 2 * 0.25 = 5e-4
    assert BatchSumToZero(weight=1e-3).penalty(pair(C, R)).item() == pytest.approx(5e-4)
    # weight 0.1, three pairs with rewards summing to 3 over 6: mean 0.5 -> 0.1 * 3 * 0.25
    assert BatchSumToZero(weight=0.1).penalty(pair([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])).item() == pytest.approx(0.075)


def test_bsr_zero_when_batch_sums_to_zero_and_gradient_points_to_center():
    c = torch.tensor([2.0, -1.0], requires_grad=True)
    r = torch.tensor([1.0, -2.0], requires_grad=True)
    assert BatchSumToZero(weight=1.0).penalty(pair(c, r)).item() == 0.0
    c2 = torch.tensor([3.0], requires_grad=True)
    BatchSumToZero(weight=1.0).penalty(PairOutputs(c2, torch.tensor([1.0]), torch.zeros(1, 2),
                                                   torch.zeros(1, 2))).backward()
    # d/dc [B * ((c + r) / 2)^2] = B * (c + r) / 2 = 2
    assert c2.grad.item() == pytest.approx(2.0)


def test_bsr_global_scope_without_distributed_equals_device():
    assert BatchSumToZero(1e-3, "global").penalty(pair(C, R)).item() == BatchSumToZero(1e-3).penalty(pair(C, R)).item()
    with pytest.raises(ValueError, match="scope"):
        BatchSumToZero(scope="world")


def test_logit_norm_by_hand():
    margin = LogitNorm(eps=0.0).margin(pair(C, R))
    assert margin.tolist() == pytest.approx([1.0, 3.0 / math.sqrt(5.0)])


def test_reward_centering_by_hand():
    # (c + r) = (1, 1): mean of squares 1 -> 0.01
    assert RewardCentering().penalty(pair(C, R)).item() == pytest.approx(0.01)
    assert RewardCentering(weight=2.0).penalty(pair([3.0], [1.0])).item() == pytest.approx(32)


def test_hidden_norm_variance_by_hand():
    # norms: chosen (3,4) -> 5, (0,1) -> 1; rejected (0,0) -> 0, (6,8) -> 10. mean 4,
    # squared deviations 1, 9, 16, 36 -> population variance 62 / 4 = 15.5
    hc = torch.tensor([[3.0, 4.0], [0.0, 1.0]], requires_grad=True)
    hr = torch.tensor([[0.0, 0.0], [6.0, 8.0]])
    penalty = HiddenNormVariance(weight=0.1).penalty(pair(C, R, hc, hr))
    assert penalty.item() == pytest.approx(1.55)
    penalty.backward()  # the gradient reaches the hidden states: d/dh_0 = 0.1 * 2 * (5 - 4) / 4 * h_0 / ||h_0||
    assert hc.grad[0].tolist() == pytest.approx([0.05 * 0.6, 0.05 * 0.8])
    same = torch.tensor([[3.0, 4.0], [0.0, 5.0]])
    assert HiddenNormVariance(1.0).penalty(pair(C, R, same, same.flip(-1))).item() == pytest.approx(0.0)


def test_two_argument_hooks_of_user_subclasses_keep_working():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        class OldStyle(Regularizer):
            def penalty(self, chosen, rejected):
                return (chosen - rejected).sum()

            def margin(self, chosen, rejected, scale=2.0):
                return scale * (chosen - rejected)

    assert any("old regularizer hook signature" in str(w.message) for w in caught)
    assert OldStyle().penalty(pair(C, R)).item() == 4.0
    assert OldStyle().margin(pair(C, R)).tolist() == [2.0, 6.0]


def test_repr_names_arguments():
    assert repr(BatchSumToZero(0.5)) == "BatchSumToZero(weight=0.5, scope='device', scale='configured')"
    assert isinstance(LogitNorm(), Regularizer)


def trained(chosen, rejected) -> PairOutputs:
    """A pair batch as training sees it: rewards with gradient."""
    out = pair(chosen, rejected)
    return PairOutputs(out.chosen.requires_grad_(), out.rejected.requires_grad_(), out.chosen_hidden,
                       out.rejected_hidden)


def test_bsr_warns_once_on_micro_batches_of_fewer_than_four_pairs():
    bsr = BatchSumToZero(weight=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bsr.penalty(pair([3.0], [1.0]))  # a 1-pair validation batch (no gradient): no warning
    with pytest.warns(UserWarning, match=r"1 pair\(s\) per device batch.*per-pair reward centering.*scope: global"):
        penalty = bsr.penalty(trained([3.0], [1.0]))
    assert penalty.item() == pytest.approx(4.0)  # B = 1: ((3 + 1) / 2) ** 2, what the warning says it reduces to
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bsr.penalty(trained([3.0], [1.0]))  # once only
        BatchSumToZero().penalty(trained([1.0] * 4, [0.0] * 4))  # 4 pairs: no warning


def test_bsr_on_length_grouped_batches_warns_once_and_random_batches_do_not(tiny_llama, synthetic_jsonl, tmp_path):
    from bsr_lightning.cli import cli_main
    from test_cli import fit_args

    bsr = ["--model.regularizer", "bsr_lightning.reward.regularizers.BatchSumToZero"]
    with pytest.warns(UserWarning, match=r"BatchSumToZero penalizes a statistic of each batch.*group_by_length false"):
        cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path / "grouped", *bsr, "--data.group_by_length", "true"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path / "random", *bsr))
        cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path / "bt", "--data.group_by_length", "true"))
    assert not [w for w in caught if "statistic of each batch" in str(w.message)]


def test_bsr_scales_a_short_last_batch_by_the_configured_batch_size_as_the_authors():
    """Issue 34, item 8: their trainer multiplies bsr_lambda by the per-device batch size once
    (``bsr_lambda * _train_batch_size``), so a last batch of 5 pairs is scaled by 16 too. By hand: rewards
    [1, 2, 3, 4, 5] and [0, 0, 0, 0, 0] have mean 1.5; 0.1 * 16 * 1.5^2 = 3.6, and 0.1 * 5 * 2.25 = 1.125 per batch."""
    out = pair([1.0, 2.0, 3.0, 4.0, 5.0], [0.0] * 5)
    configured = BatchSumToZero(weight=0.1)
    assert configured.penalty(out).item() == pytest.approx(1.125)  # outside fit: the batch's pairs
    configured.configure(16)
    assert configured.penalty(out).item() == pytest.approx(3.6)
    per_batch = BatchSumToZero(weight=0.1, scale="batch")
    per_batch.configure(16)
    assert per_batch.penalty(out).item() == pytest.approx(1.125)
