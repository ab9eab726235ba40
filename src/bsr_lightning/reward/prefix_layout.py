"""Groups of sequences that share a prefix, laid out once: ``[shared prefix | s1 suffix | s2 suffix | ... | sk
suffix]`` rows, their position ids, attention masks and the indices each sequence's output is read at. A pair is the
group of k = 2 (chosen, rejected); RM-Bench's six responses to one prompt are a group of 6.

Each suffix attends to the prefix and, causally, to itself, never to another suffix; its positions continue from the
end of the prefix, so every token sees exactly what it sees in its own padded sequence. The prefix is the longest
common token prefix of the group's sequences (found on token ids), cut so that each keeps a token of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PAD, PREFIX = -1, 0  # segment ids; sequence i of a group (from 0) is segment i + 1
CHOSEN, REJECTED = 1, 2  # the segments of a pair

Group = tuple[list[Tensor], int]
"""A group: its sequences ``(n_i,)`` and their shared prefix length."""


@dataclass
class GroupRows:
    """``b`` groups as rows of length ``L``.

    Attributes:
        input_ids: ``(b, L)`` tokens, right padded with ``pad_id``.
        position_ids: ``(b, L)`` each token's position in its own sequence.
        segments: ``(b, L)`` ``PREFIX``, ``i + 1`` for the suffix of sequence ``i``, or ``PAD``, per token.
        ends: ``(N,)`` the flattened ``b * L`` index of each sequence's last token, group by group.
    """

    input_ids: Tensor
    position_ids: Tensor
    segments: Tensor
    ends: Tensor

    @property
    def computed(self) -> int:
        """Tokens the forward pass computes (``b * L``, padding included)."""
        return self.input_ids.numel()


def shared_prefix_length(sequences: list[Tensor]) -> int:
    """The longest common token prefix of ``(n_i,)`` sequences, at most ``min(n_i) - 1`` so that each keeps at least
    one token of its own (the one its output is read at)."""
    n = min(len(s) for s in sequences) - 1
    if len(sequences) == 1 or n <= 0:
        return 0
    same = torch.stack([s[:n] == sequences[0][:n] for s in sequences[1:]]).all(0).int()
    return n if bool(same.all()) else int(same.argmin())


def make_group(sequences: list[Tensor]) -> Group:
    """A group of ``sequences`` with their shared prefix length."""
    return sequences, shared_prefix_length(sequences)


def laid_out_length(group: Group) -> int:
    """The length of one group laid out as one row: the prefix once, then every suffix."""
    sequences, prefix = group
    return sum(len(s) for s in sequences) - (len(sequences) - 1) * prefix


def batch_groups(input_ids: Tensor, attention_mask: Tensor, group_size: int = 2) -> list[Group]:
    """The groups of a ``(k B, T)`` batch whose group ``g`` holds rows ``g, B + g, ..., (k - 1) B + g`` (a pair batch:
    chosen rows first), padding removed (either side)."""
    mask = attention_mask.bool()
    size = input_ids.size(0) // group_size
    return [make_group([input_ids[i * size + g][mask[i * size + g]] for i in range(group_size)])
            for g in range(size)]


def build_rows(groups: list[Group], pad_id: int) -> GroupRows:
    """Lay ``groups`` (any sizes) out as right-padded rows ``[prefix | suffix 1 | ... | suffix k]``."""
    width = max(laid_out_length(group) for group in groups)
    device = groups[0][0][0].device
    ids = torch.full((len(groups), width), pad_id, dtype=groups[0][0][0].dtype, device=device)
    positions = torch.zeros((len(groups), width), dtype=torch.long, device=device)
    segments = torch.full((len(groups), width), PAD, dtype=torch.long, device=device)
    ends = []
    for row, (sequences, p) in enumerate(groups):
        ids[row, :p], positions[row, :p], segments[row, :p] = sequences[0][:p], torch.arange(p, device=device), PREFIX
        start = p
        for i, sequence in enumerate(sequences):
            stop = start + len(sequence) - p
            ids[row, start:stop] = sequence[p:]
            positions[row, start:stop] = torch.arange(p, len(sequence), device=device)
            segments[row, start:stop] = i + 1
            ends.append(row * width + stop - 1)
            start = stop
    return GroupRows(ids, positions, segments, torch.tensor(ends, dtype=torch.long, device=device))


def _may_attend(q: Tensor, k: Tensor, q_seg: Tensor, k_seg: Tensor) -> Tensor:
    """Causal, within one's own sequence or to the prefix, never to padding; a query always sees itself (so no mask
    row is empty; a padding query's output is never read)."""
    return ((q >= k) & ((k_seg == PREFIX) | (k_seg == q_seg)) & (k_seg != PAD)) | (q == k)


def allowed(segments: Tensor) -> Tensor:
    """``(b, 1, L, L)`` True where query ``q`` may attend key ``k`` (:func:`_may_attend`)."""
    idx = torch.arange(segments.size(1), device=segments.device)
    ok = _may_attend(idx[None, :, None], idx[None, None, :], segments[:, :, None], segments[:, None, :])
    return ok.unsqueeze(1)


def additive_mask(segments: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """:func:`allowed` as the ``(b, 1, L, L)`` additive float mask ``eager`` attention adds to its scores (0 or the
    dtype's minimum); transformers passes a 4D mask through as-is."""
    zero = torch.zeros((), dtype=dtype, device=segments.device)
    return torch.where(allowed(segments), zero, torch.finfo(dtype).min)


def block_mask(segments: Tensor):
    """:func:`allowed` as a FlexAttention ``BlockMask`` (block-sparse: fully masked blocks are skipped)."""
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b, h, q, k):
        return _may_attend(q, k, segments[b, q], segments[b, k])

    b, length = segments.shape
    return create_block_mask(mask_mod, B=b, H=None, Q_LEN=length, KV_LEN=length, device=segments.device)
