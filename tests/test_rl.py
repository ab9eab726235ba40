"""RLOO maths against hand computation."""

import math

import pytest
import torch

from bsr_lightning.errors import ConfigError
from bsr_lightning.rloo.advantages import leave_one_out_advantages
from bsr_lightning.rloo.generation import response_mask_of
from bsr_lightning.rloo.kl import SequenceKL, TokenKL, sequence_kl
from bsr_lightning.rloo.loss import SequenceClip, TokenClip, masked_mean
from bsr_lightning.rloo.shapers import Center, Clip, MissingEOSPenalty, RMSNormalize, Whiten


def test_leave_one_out_advantages_by_hand():
    rewards = torch.tensor([1.0, 2.0, 3.0, 6.0])
    # k=2: each minus the other sample of its prompt
    assert torch.allclose(leave_one_out_advantages(rewards, 2), torch.tensor([-1.0, 1.0, -3.0, 3.0]))
    # k=4: 1 - (2+3+6)/3, 2 - (1+3+6)/3, 3 - (1+2+6)/3, 6 - (1+2+3)/3
    expected = torch.tensor([1 - 11 / 3, 2 - 10 / 3, 0.0, 4.0])
    advantages = leave_one_out_advantages(rewards, 4)
    assert torch.allclose(advantages, expected)
    assert advantages.sum().abs() < 1e-6


def test_loo_baselines_sum_to_zero_per_group_and_ignore_shifts():
    rewards = torch.randn(6 * 5, generator=torch.Generator().manual_seed(0))
    advantages = leave_one_out_advantages(rewards, 5)
    assert torch.allclose(advantages.view(6, 5).sum(-1), torch.zeros(6), atol=1e-5)
    assert torch.allclose(leave_one_out_advantages(rewards + 7.5, 5), advantages, atol=1e-5)


EOS = torch.tensor([True, True, True, True, True, True])


def test_reward_shapers_by_hand():
    assert Center().scores(torch.tensor([1.0, 2.0, 6.0]), EOS[:3]).tolist() == [-2.0, -1.0, 3.0]
    assert RMSNormalize(eps=0.0).scores(torch.tensor([3.0, -4.0, 0.0, 0.0]), EOS[:4]).tolist() == pytest.approx(
        [1.2, -1.6, 0.0, 0.0])  # rms = 2.5
    assert Clip(2.0).scores(torch.tensor([-3.0, 1.5, 9.0]), EOS[:3]).tolist() == [-2.0, 1.5, 2.0]
    has_eos = torch.tensor([True, False, True])
    assert MissingEOSPenalty(0.5).scores(torch.tensor([1.0, 1.0, 1.0]), has_eos).tolist() == [1.0, 0.5, 1.0]
    w = Whiten().advantages(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert w.mean().abs() < 1e-6 and w.std().item() == pytest.approx(1.0, abs=1e-5)
    assert Center().advantages(torch.tensor([1.0, 2.0])).tolist() == [1.0, 2.0]  # score-only shapers leave these


def test_reward_shaping_under_the_loo_baseline():
    rewards = torch.tensor([0.5, 2.0, -1.0, 3.0, 4.0, 1.0])
    plain = leave_one_out_advantages(rewards, 3)
    # centering is a constant shift of the batch: the advantages do not change
    assert torch.allclose(leave_one_out_advantages(Center().scores(rewards, EOS), 3), plain, atol=1e-6)
    # RMS scaling rescales every advantage by 1 / rms
    rms = math.sqrt(sum(r * r for r in rewards.tolist()) / 6)
    shaped = leave_one_out_advantages(RMSNormalize(eps=0.0).scores(rewards, EOS), 3)
    assert torch.allclose(shaped, plain / rms, atol=1e-6)
    # k = 3, m = 1 truncated in the first group: it loses p * (k - m) / (k - 1) = p, the others gain p * m / 2
    has_eos = torch.tensor([False, True, True, True, True, True])
    penalized = leave_one_out_advantages(MissingEOSPenalty(1.0).scores(rewards, has_eos), 3)
    assert (penalized - plain).tolist() == pytest.approx([-1.0, 0.5, 0.5, 0.0, 0.0, 0.0], abs=1e-6)


def test_bad_group_sizes_are_refused():
    with pytest.raises(ValueError, match="k >= 2"):
        leave_one_out_advantages(torch.zeros(4), 1)
    with pytest.raises(ValueError, match="groups of k=3"):
        leave_one_out_advantages(torch.zeros(4), 3)


def test_token_clip_by_hand():
    mask = torch.ones(2, 1)
    old = torch.zeros(2, 1)
    loss, frac = TokenClip(clip=0.2)(old.clone(), old, torch.tensor([1.0, -2.0]), mask)
    assert loss.item() == pytest.approx(0.5) and frac.item() == 0.0  # -(1 - 2) / 2
    # ratio 1.5: positive advantage is clipped to 1.2, negative keeps the pessimistic 1.5
    logp = torch.full((2, 1), math.log(1.5))
    loss, frac = TokenClip(clip=0.2)(logp, old, torch.tensor([1.0, -1.0]), mask)
    assert loss.item() == pytest.approx((-1.2 + 1.5) / 2) and frac.item() == pytest.approx(0.5)


def test_token_clip_averages_tokens_of_each_sequence_then_sequences():
    logp = torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    loss, _ = TokenClip(clip=0.2)(logp, torch.zeros(2, 3), torch.tensor([2.0, 1.0]), mask)
    loss.backward()
    # d loss / d logp = -A / (tokens in the sequence) / (sequences), zero on masked tokens
    assert torch.allclose(logp.grad, torch.tensor([[-0.5, -0.5, 0.0], [-0.5, 0.0, 0.0]]))


def ten_and_hundred(shift: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 10-token and a 100-token response (width 100), every token's log-probability ``shift`` above rollout
    time's."""
    mask = torch.zeros(2, 100)
    mask[0, :10], mask[1, :] = 1, 1
    old = torch.full((2, 100), -1.0)
    return (old + shift).requires_grad_(), old, mask


def test_sequence_clip_weighs_every_token_the_same_whatever_the_length():
    logp, old, mask = ten_and_hundred(0.0)
    loss, frac = SequenceClip(clip=0.2)(logp, old, torch.tensor([1.0, 1.0]), mask)
    loss.backward()
    # rho = 1, A = 1: loss = -(1 + 1) / 2, and d loss / d logp_t = -A / N = -0.5 on every response token
    assert loss.item() == pytest.approx(-1.0) and frac.item() == 0.0
    assert torch.allclose(logp.grad[0, :10], torch.full((10,), -0.5)) and logp.grad[0, 10:].abs().sum() == 0
    assert torch.allclose(logp.grad[1], torch.full((100,), -0.5))
    # the per-token mean instead gives -A / L / N: -0.05 and -0.005, long responses down-weighted 10x
    logp, old, mask = ten_and_hundred(0.0)
    TokenClip(clip=0.2)(logp, old, torch.tensor([1.0, 1.0]), mask)[0].backward()
    assert logp.grad[0, 0].item() == pytest.approx(-0.05) and logp.grad[1, 0].item() == pytest.approx(-0.005)


def test_sequence_clip_clips_the_long_response_as_one_action():
    logp, old, mask = ten_and_hundred(0.01)  # sequence ratios exp(0.1) = 1.105 and exp(1) = 2.718
    loss, frac = SequenceClip(clip=0.2)(logp, old, torch.tensor([1.0, 1.0]), mask)
    loss.backward()
    assert loss.item() == pytest.approx(-(math.exp(0.1) + 1.2) / 2, rel=1e-5)
    assert frac.item() == 0.5  # one of two sequences
    assert torch.allclose(logp.grad[0, :10], torch.full((10,), -math.exp(0.1) / 2))  # -rho A / N
    assert logp.grad[1].abs().sum() == 0  # clipped: no gradient at all
    # per token, each ratio is exp(0.01) = 1.01: nothing is clipped
    logp, old, mask = ten_and_hundred(0.01)
    assert TokenClip(clip=0.2)(logp, old, torch.tensor([1.0, 1.0]), mask)[1].item() == 0.0


def test_sequence_clip_keeps_the_pessimistic_ratio_for_negative_advantages():
    logp, old, mask = ten_and_hundred(0.01)
    loss, frac = SequenceClip(clip=0.2)(logp, old, torch.tensor([-1.0, -1.0]), mask)
    # -min(rho A, clip(rho) A) with A = -1 is rho itself: no clipping on either
    assert loss.item() == pytest.approx((math.exp(0.1) + math.e) / 2, rel=1e-5) and frac.item() == 0.0


def test_a_policy_loss_clip_must_be_positive():
    with pytest.raises(ConfigError, match=r"model.policy_loss.init_args.clip: must be positive, got 0"):
        SequenceClip(clip=0)


def test_kl_penalties_by_hand():
    old = torch.tensor([[-1.0, -2.0, -3.0]])
    ref = torch.tensor([[-1.5, -2.0, -9.0]])
    mask = torch.tensor([[1, 1, 0]])
    assert sequence_kl(old, ref, mask).tolist() == [0.5]
    assert SequenceKL(beta=0.1).reward_penalty(old, ref, mask).tolist() == pytest.approx([0.05])
    assert SequenceKL(beta=0.1).loss_penalty(old, ref, mask).item() == 0.0
    assert TokenKL(beta=0.1).reward_penalty(old, ref, mask).tolist() == [0.0]
    # k3 with ref - logp = log 2 on one of two tokens: 2 - log 2 - 1, averaged over 2 tokens
    logp = torch.tensor([[0.0, -1.0]])
    ref2 = torch.tensor([[math.log(2.0), -1.0]])
    expected = 0.1 * (2 - math.log(2) - 1) / 2
    assert TokenKL(beta=0.1).loss_penalty(logp, ref2, torch.ones(1, 2)).item() == pytest.approx(expected)
    assert TokenKL(beta=0.1).loss_penalty(logp, logp, torch.ones(1, 2)).item() == 0.0


def test_masked_mean():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert masked_mean(values, torch.tensor([1, 0, 1, 0])).item() == 2.0


def test_response_mask_stops_at_first_eos():
    ids = torch.tensor([[5, 3, 7, 3], [5, 5, 5, 5], [3, 9, 9, 9]])
    mask, has_eos = response_mask_of(ids, [3])
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert has_eos.tolist() == [True, False, True]


@pytest.mark.parametrize("loss", [SequenceClip(), TokenClip()], ids=["SequenceClip", "TokenClip"])
def test_minus_infinity_at_masked_positions_gives_finite_losses_and_gradients(loss):
    """Issue 34, item 7: a -inf log-prob past a response's end (masked) made SequenceClip NaN, since it multiplied by
    the mask where the authors use masked_fill. By hand: the kept tokens' log-ratios sum to 0.1 - 0.1 = 0."""
    logp = torch.tensor([[-1.0, -2.0, -math.inf], [-0.5, -math.inf, -math.inf]], requires_grad=True)
    old = torch.tensor([[-1.1, -1.9, -math.inf], [-0.5, -3.0, -math.inf]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    total, _ = loss(logp, old, torch.tensor([1.0, -1.0]), mask)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(logp.grad).all()
    assert logp.grad[mask == 0].abs().max() == 0
    assert sequence_kl(logp.detach(), old, mask).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
