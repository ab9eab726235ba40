"""Pairs laid out once through a shared prompt: ``[shared prefix | chosen suffix | rejected suffix]`` rows, their
position ids, attention masks and the indices the rewards are read at (used by
:class:`~bsr_lightning.reward.forward.SharedPrefix`).

Rejected-suffix tokens attend to the prefix and, causally, to themselves, never to the chosen suffix; their
positions continue from the end of the prefix, so every token sees exactly what it sees in its own padded sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PREFIX, CHOSEN, REJECTED, PAD = 0, 1, 2, 3


@dataclass
class PairRows:
    """``b`` pairs as rows of length ``L``.

    Attributes:
        input_ids: ``(b, L)`` tokens, right padded with ``pad_id``.
        position_ids: ``(b, L)`` each token's position in its own sequence.
        segments: ``(b, L)`` ``PREFIX``, ``CHOSEN``, ``REJECTED`` or ``PAD`` per token.
        ends: ``(b, 2)`` the row index of the chosen and of the rejected sequence's last token.
        computed: tokens the forward pass computes (``b * L``, padding included).
    """

    input_ids: Tensor
    position_ids: Tensor
    segments: Tensor
    ends: Tensor

    @property
    def computed(self) -> int:
        return self.input_ids.numel()


def shared_prefix_length(chosen: Tensor, rejected: Tensor) -> int:
    """The longest common token prefix of two ``(n,)``/``(m,)`` sequences, at most ``min(n, m) - 1`` so that each
    keeps at least one token of its own (the one its reward is read at)."""
    n = min(len(chosen), len(rejected)) - 1
    same = (chosen[:n] == rejected[:n]).int()
    return n if bool(same.all()) else int(same.argmin())


def laid_out_length(piece: tuple[Tensor, Tensor, int]) -> int:
    """The length of one ``(chosen, rejected, prefix_length)`` pair laid out as one row."""
    chosen, rejected, prefix = piece
    return len(chosen) + len(rejected) - prefix


def pair_pieces(input_ids: Tensor, attention_mask: Tensor) -> list[tuple[Tensor, Tensor, int]]:
    """``(chosen, rejected, prefix_length)`` per pair of a ``(2B, T)`` batch (chosen rows first), padding removed
    (either side)."""
    mask = attention_mask.bool()
    half = input_ids.size(0) // 2
    out = []
    for i in range(half):
        chosen, rejected = input_ids[i][mask[i]], input_ids[half + i][mask[half + i]]
        out.append((chosen, rejected, shared_prefix_length(chosen, rejected)))
    return out


def build_rows(pieces: list[tuple[Tensor, Tensor, int]], pad_id: int) -> PairRows:
    """Lay ``pieces`` out as right-padded rows ``[prefix | chosen suffix | rejected suffix]``."""
    width = max(laid_out_length(piece) for piece in pieces)
    device = pieces[0][0].device
    ids = torch.full((len(pieces), width), pad_id, dtype=pieces[0][0].dtype, device=device)
    positions = torch.zeros((len(pieces), width), dtype=torch.long, device=device)
    segments = torch.full((len(pieces), width), PAD, dtype=torch.long, device=device)
    ends = torch.zeros((len(pieces), 2), dtype=torch.long, device=device)
    for row, (chosen, rejected, p) in enumerate(pieces):
        n, m = len(chosen), len(rejected)
        ids[row, : n + m - p] = torch.cat([chosen, rejected[p:]])
        positions[row, : n + m - p] = torch.cat([torch.arange(n, device=device), torch.arange(p, m, device=device)])
        segments[row, :p], segments[row, p:n], segments[row, n : n + m - p] = PREFIX, CHOSEN, REJECTED
        ends[row] = torch.tensor([n - 1, n + m - p - 1], device=device)
    return PairRows(ids, positions, segments, ends)


def allowed(segments: Tensor) -> Tensor:
    """``(b, 1, L, L)`` True where query ``q`` may attend key ``k``: causal, never rejected-to-chosen, never to
    padding keys (a padding query also sees itself, so no row is empty; its output is never read)."""
    q_seg, k_seg = segments[:, :, None], segments[:, None, :]  # (b, L, 1), (b, 1, L)
    idx = torch.arange(segments.size(1), device=segments.device)
    causal = idx[None, :, None] >= idx[None, None, :]
    ok = causal & ~((q_seg == REJECTED) & (k_seg == CHOSEN)) & (k_seg != PAD)
    return (ok | (idx[:, None] == idx[None, :])).unsqueeze(1)


def additive_mask(segments: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """:func:`allowed` as the ``(b, 1, L, L)`` additive float mask ``eager`` attention adds to its scores (0 or the
    dtype's minimum); transformers passes a 4D mask through as-is."""
    zero = torch.zeros((), dtype=dtype, device=segments.device)
    return torch.where(allowed(segments), zero, torch.finfo(dtype).min)


def block_mask(segments: Tensor):
    """:func:`allowed` as a FlexAttention ``BlockMask`` (block-sparse: fully masked blocks are skipped)."""
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b, h, q, k):
        q_seg, k_seg = segments[b, q], segments[b, k]
        return ((q >= k) & ~((q_seg == REJECTED) & (k_seg == CHOSEN)) & (k_seg != PAD)) | (q == k)

    b, length = segments.shape
    return create_block_mask(mask_mod, B=b, H=None, Q_LEN=length, KV_LEN=length, device=segments.device)
