"""Padding-free packing and length buckets give the padded path's rewards, hidden states and gradients."""

import shutil
from itertools import combinations, pairwise

import pytest
import torch

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.reward.forward import LengthBuckets, Packed, Padded, fewest_position_cuts, length_groups
from conftest import load_script, random_batch


def positions(lengths: list[int], cuts: list[int]) -> int:
    bounds = [0, *cuts, len(lengths)]
    return sum((b - a) * lengths[b - 1] for a, b in pairwise(bounds))


def test_length_groups_compute_the_fewest_positions():
    # 2, 3, 3, 3, 3, 3, 20, 20 in 2 groups: equal halves pad to 3 and 20 (4*3 + 4*20 = 92); the best cut keeps the
    # two 20s alone (6*3 + 2*20 = 58)
    assert fewest_position_cuts([2, 3, 3, 3, 3, 3, 20, 20], 2) == [6]
    assert positions([2, 3, 3, 3, 3, 3, 20, 20], [6]) == 58
    groups = length_groups(torch.tensor([20, 3, 2, 3, 20, 3, 3, 3]), 2)  # indices, shortest first, ties in order
    assert [g.tolist() for g in groups] == [[2, 1, 3, 5, 6, 7], [0, 4]]
    assert fewest_position_cuts([4, 4, 4], 2) == [1]  # a tie: the earliest cut
    assert fewest_position_cuts([1, 2, 3], 3) == [1, 2] and fewest_position_cuts([7], 1) == []
    assert [g.tolist() for g in length_groups(torch.tensor([5, 1]), 4)] == [[1], [0]]  # never more groups than rows


def test_token_counts_script_counts_both_cuts():
    cost = load_script("token_counts").bucket_cost
    lengths = torch.tensor([20, 3, 2, 3, 20, 3, 3, 3])
    assert cost(lengths, 2) == 58 and cost(lengths, 2, equal_counts=True) == 92 and cost(lengths, 8) == 57


def test_length_groups_match_a_brute_force_search():
    rng = torch.Generator().manual_seed(0)
    for _ in range(200):
        n, groups = int(torch.randint(1, 10, (1,), generator=rng)), int(torch.randint(1, 5, (1,), generator=rng))
        groups = min(groups, n)
        lengths = sorted(torch.randint(1, 60, (n,), generator=rng).tolist())
        best = min(positions(lengths, list(c)) for c in combinations(range(1, n), groups - 1))
        assert positions(lengths, fewest_position_cuts(lengths, groups)) == best, (lengths, groups)


@pytest.mark.parametrize("batching", [Packed(), LengthBuckets(2), LengthBuckets(8)],
                         ids=["Packed", "LengthBuckets(2)", "LengthBuckets(8)"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_decoder_batchings_equal_padded(tiny_llama, batching, side):
    padded = RewardModel(Backbone(tiny_llama), score_init="normal")
    other = RewardModel(Backbone(tiny_llama), forward_mode=batching)
    other.load_state_dict(padded.state_dict())
    ids, mask = random_batch(padded, [5, 17, 9, 30, 2, 12], side)
    r1, h1 = padded(ids, mask)
    r2, h2 = other(ids, mask)
    assert torch.allclose(r1, r2, atol=1e-5) and torch.allclose(h1, h2, atol=1e-5)
    r1.square().sum().backward()
    r2.square().sum().backward()
    for (name, p1), p2 in zip(padded.named_parameters(), other.parameters(), strict=True):
        assert torch.allclose(p1.grad, p2.grad, atol=1e-4, rtol=1e-4), name


def test_encoder_buckets_equal_padded_and_packing_is_refused(tiny_bert):
    padded = RewardModel(Backbone(tiny_bert), score_init="normal")
    buckets = RewardModel(Backbone(tiny_bert), forward_mode=LengthBuckets(3))
    buckets.load_state_dict(padded.state_dict())
    ids, mask = random_batch(padded, [5, 17, 9, 30, 2, 12], "right")
    assert torch.allclose(padded.score(ids, mask), buckets.score(ids, mask), atol=1e-5)
    with pytest.raises(ValueError, match="Packed forward needs a decoder.*LengthBuckets for encoders"):
        RewardModel(Backbone(tiny_bert), forward_mode=Packed())


def test_packed_training_step_matches_padded(tiny_llama, synthetic_jsonl):
    from bsr_lightning import PreferenceDataModule

    data = PreferenceDataModule(path=synthetic_jsonl, tokenizer=tiny_llama, batch_size=6, max_length=128)
    data.setup("fit")
    pairs = next(iter(data.train_dataloader()))
    losses = []
    for batching in (Padded(), Packed()):
        torch.manual_seed(0)
        module = RewardModel(Backbone(tiny_llama), forward_mode=batching, score_init="normal")
        losses.append(module.pair_step(pairs)["loss"])
    assert losses[0].item() == pytest.approx(losses[1].item(), abs=1e-6)


@pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("cc")), reason="torch.compile on CPU needs a C compiler")
def test_forward_mode_is_stored_as_plain_data_and_compile_keeps_names_and_scores(tiny_llama):
    module = RewardModel(Backbone(tiny_llama), forward_mode=LengthBuckets(3), compile=True, score_init="normal")
    assert module.hparams.forward_mode == {"class_path": "bsr_lightning.reward.forward.LengthBuckets",
                                       "init_args": {"buckets": 3}}
    names = set(module.state_dict())
    ids, mask = random_batch(module, [5, 17, 9], "left")
    eager = module.score(ids, mask)
    module.configure_model()  # torch.compile, in place
    assert set(module.state_dict()) == names
    assert torch.allclose(module.score(ids, mask), eager, atol=1e-5)
