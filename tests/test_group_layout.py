"""One layout for any group of sequences that share a prefix (issue 33): ``SharedPrefix`` on groups of k = 2, 3, 4
and 6 equals ``Padded`` in rewards, head inputs and gradients, with mixed prefix lengths, both padding sides, and one
sequence a prefix of another; pairs are the case k = 2."""

import pytest
import torch

from bsr_lightning.data.collate import pad_sequences
from bsr_lightning.reward.forward import SharedPrefix, group_forward
from bsr_lightning.reward.prefix_layout import PAD, PREFIX, allowed, batch_groups, build_rows, make_group
from test_shared_prefix import assert_same, pair


def group_batch(model, k: int, side: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(k B, T)`` ids and mask for B = 4 groups (group g is rows g, B + g, ...): prefixes of 0 to 9 tokens;
    in the second group the first sequence is a prefix of the second."""
    g = torch.Generator().manual_seed(seed)
    rows: list[list] = [[] for _ in range(k)]
    for group, p in enumerate((6, 0, 9, 3)):
        prefix = torch.randint(10, 300, (p,), generator=g)
        for i in range(k):
            suffix = torch.randint(10 + 40 * i, 50 + 40 * i, (int(torch.randint(1, 7, (1,), generator=g)),),
                                   generator=g)
            rows[i].append(torch.cat([prefix, suffix]))
        if group == 1 and k > 1:
            rows[1][-1] = torch.cat([rows[0][-1], rows[1][-1]])  # sequence 0 is a prefix of sequence 1
    flat = [seq.numpy() for seqs in rows for seq in seqs]
    return pad_sequences(flat, model.tokenizer.pad_token_id, side)


def test_a_group_of_three_by_hand():
    groups = [make_group([torch.tensor([7, 8, 9]), torch.tensor([7, 8, 5, 6]), torch.tensor([7, 8, 4])])]
    rows = build_rows(groups, pad_id=0)
    assert groups[0][1] == 2
    assert rows.input_ids.tolist() == [[7, 8, 9, 5, 6, 4]]
    assert rows.position_ids.tolist() == [[0, 1, 2, 2, 3, 2]]
    assert rows.segments.tolist() == [[PREFIX, PREFIX, 1, 2, 2, 3]]
    assert rows.ends.tolist() == [2, 4, 5]
    assert allowed(rows.segments)[0, 0].int().tolist() == [[1, 0, 0, 0, 0, 0],
                                                           [1, 1, 0, 0, 0, 0],
                                                           [1, 1, 1, 0, 0, 0],
                                                           [1, 1, 0, 1, 0, 0],
                                                           [1, 1, 0, 1, 1, 0],
                                                           [1, 1, 0, 0, 0, 1]]  # no suffix sees another


def test_groups_of_different_sizes_share_one_pass():
    groups = [make_group([torch.tensor([1, 2, 3]), torch.tensor([1, 2, 4])]), make_group([torch.tensor([5, 6])])]
    rows = build_rows(groups, pad_id=0)
    assert rows.segments.tolist() == [[PREFIX, PREFIX, 1, 2], [1, 1, PAD, PAD]]
    assert rows.ends.tolist() == [2, 3, 5]


@pytest.mark.parametrize("k", [2, 3, 4, 6])
@pytest.mark.parametrize("side", ["left", "right"])
def test_shared_prefix_on_groups_equals_padded(tiny_llama, k, side):
    padded, shared = pair(tiny_llama, "sdpa", SharedPrefix(2))
    ids, mask = group_batch(padded, k, side)
    shared.forward_mode = _Grouped(k)
    assert_same(padded, shared, ids, mask)


def test_group_forward_reads_groups_of_mixed_sizes_in_order(tiny_llama):
    padded, shared = pair(tiny_llama, "eager", SharedPrefix())
    ids, mask = group_batch(padded, 3, "right")
    groups = batch_groups(ids, mask, 3)
    mixed = [groups[0], make_group(groups[1][0][:2]), make_group(groups[2][0][:1]), groups[3]]
    rewards, _ = group_forward(shared, mixed, buckets=2)
    expected = torch.cat([padded(*pad_sequences([s.numpy() for s in seqs], padded.tokenizer.pad_token_id,
                                                "right"))[0] for seqs, _ in mixed])
    torch.testing.assert_close(rewards, expected, atol=1e-5, rtol=1e-5)


class _Grouped:
    """SharedPrefix over groups of ``k`` (the reward model's forward passes its batch, as a pair batch is passed)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, module, input_ids, attention_mask):
        return SharedPrefix(2)(module, input_ids, attention_mask, group_size=self.k)
