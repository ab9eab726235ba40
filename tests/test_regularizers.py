import math

import pytest
import torch

from bsr_lightning.regularizers import BatchSumToZero, LogitNorm, NoRegularizer, Regularizer, RewardCentering

C = torch.tensor([1.0, 2.0])
R = torch.tensor([0.0, -1.0])


def test_no_regularizer_is_plain_bt():
    reg = NoRegularizer()
    assert torch.equal(reg.margin(C, R), torch.tensor([1.0, 3.0]))
    assert reg.penalty(C, R).item() == 0.0
    assert torch.equal(reg.shape_rewards(C), C)


def test_bsr_penalty_by_hand():
    # rewards (1, 2, 0, -1): mean 0.5, B = 2 pairs -> 1e-3 * 2 * 0.25 = 5e-4
    assert BatchSumToZero(weight=1e-3).penalty(C, R).item() == pytest.approx(5e-4)
    # weight 0.1, three pairs with rewards summing to 3 over 6: mean 0.5 -> 0.1 * 3 * 0.25
    c, r = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.0, 0.0, 0.0])
    assert BatchSumToZero(weight=0.1).penalty(c, r).item() == pytest.approx(0.075)


def test_bsr_zero_when_batch_sums_to_zero_and_gradient_points_to_center():
    c = torch.tensor([2.0, -1.0], requires_grad=True)
    r = torch.tensor([1.0, -2.0], requires_grad=True)
    assert BatchSumToZero(weight=1.0).penalty(c, r).item() == 0.0
    c2 = torch.tensor([3.0], requires_grad=True)
    BatchSumToZero(weight=1.0).penalty(c2, torch.tensor([1.0])).backward()
    # d/dc [B * ((c + r) / 2)^2] = B * (c + r) / 2 = 2
    assert c2.grad.item() == pytest.approx(2.0)


def test_bsr_global_scope_without_distributed_equals_device():
    assert BatchSumToZero(1e-3, "global").penalty(C, R).item() == BatchSumToZero(1e-3).penalty(C, R).item()
    with pytest.raises(ValueError, match="scope"):
        BatchSumToZero(scope="world")


def test_bsr_shapes_rollout_rewards_to_sum_zero():
    shaped = BatchSumToZero().shape_rewards(torch.tensor([1.0, 2.0, 6.0]))
    assert torch.allclose(shaped, torch.tensor([-2.0, -1.0, 3.0]))


def test_logit_norm_by_hand():
    margin = LogitNorm(eps=0.0).margin(C, R)
    assert margin.tolist() == pytest.approx([1.0, 3.0 / math.sqrt(5.0)])
    shaped = LogitNorm(eps=0.0).shape_rewards(torch.tensor([3.0, -4.0, 0.0, 0.0]))  # rms = 2.5
    assert shaped.tolist() == pytest.approx([1.2, -1.6, 0.0, 0.0])


def test_reward_centering_by_hand():
    # (c + r) = (1, 1): mean of squares 1 -> 0.01
    assert RewardCentering().penalty(C, R).item() == pytest.approx(0.01)
    assert RewardCentering(weight=2.0).penalty(torch.tensor([3.0]), torch.tensor([1.0])).item() == pytest.approx(32)


def test_repr_names_arguments():
    assert repr(BatchSumToZero(0.5)) == "BatchSumToZero(weight=0.5, scope='device')"
    assert isinstance(LogitNorm(), Regularizer)
