"""Forward modes of the reward model: how a padded batch of sequences goes through the backbone. The cost changes,
the scores do not.

* :class:`Padded`: one forward over the ``(N, T)`` padded batch (the default).
* :class:`LengthBuckets`: rows sorted by length and cut into buckets, each trimmed to its own longest row: less
  padding for any backbone (encoders included).
* :class:`Packed`: padding-free: all sequences concatenated into one ``(1, S)`` row with position ids restarting at
  each sequence, which transformers turns into a block-diagonal causal mask (``sdpa``, ``eager``) or ``cu_seqlens``
  (``flash_attention_2``); the reward is read at each sequence's last token. Decoders only.
* :class:`SharedPrefix`: each group of sequences that share a prompt once, as ``[shared prefix | suffix 1 | ... |
  suffix k]`` under a 4D mask (``sdpa``, ``eager``) or a FlexAttention block mask, so the prompt is computed once
  (a pair is the group of 2; :func:`group_forward` scores groups of any size). Decoders only.

Each returns rewards ``(N,)`` and the head-input hidden states ``(N, H)`` in the input order; tests check they are
equal to :class:`Padded`'s.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bsr_lightning.errors import ConfigError
from bsr_lightning.reward.prefix_layout import (
    Group,
    additive_mask,
    allowed,
    batch_groups,
    block_mask,
    build_rows,
    laid_out_length,
    make_group,
)

PACKING_ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")
SHARED_PREFIX_ATTENTION = ("sdpa", "eager", "flex_attention")
MASKS = {"eager": additive_mask, "flex_attention": block_mask}  # sdpa: the boolean mask (True: attend)


def length_groups(sizes: Tensor, buckets: int) -> tuple[Tensor, ...]:
    """Indices of ``sizes`` ``(n,)`` sorted shortest first and cut into ``min(buckets, n)`` contiguous groups that
    compute the fewest positions, each group padded to its longest: ``sum(len(g) * max(sizes[g]))``, minimized exactly
    by dynamic programming over the cut points (ties: the earliest cuts)."""
    ascending, order = sizes.sort(stable=True)
    return order.tensor_split(fewest_position_cuts(ascending.tolist(), min(buckets, len(order))))


def fewest_position_cuts(lengths: list[int], groups: int) -> list[int]:
    """The ``groups - 1`` cut points of ascending ``lengths`` that minimize ``sum(len(g) * g[-1])`` over the groups."""
    n = len(lengths)
    cost = [0] + [float("inf")] * n  # cost[j]: best for lengths[:j] in the groups so far
    back = [[0] * (n + 1) for _ in range(groups)]
    for g in range(groups):
        new = [float("inf")] * (n + 1)
        for j in range(g + 1, n - groups + g + 2):  # leave at least one row for each later group
            new[j], back[g][j] = min((cost[i] + (j - i) * lengths[j - 1], i) for i in range(g, j))
        cost = new
    cuts, j = [], n
    for g in range(groups - 1, 0, -1):
        j = back[g][j]
        cuts.append(j)
    return cuts[::-1]


def bucketed(module, sizes: Tensor, buckets: int, prepare, run, slots=None) -> tuple[Tensor, ...]:
    """For each of :func:`length_groups`, ``run(*prepare(rows))``; ``prepare`` returns the pass's ``(n, T)`` token
    ids first, and every pass's ids are embedded in one lookup (``module.one_embedding_lookup``). ``run``'s tensors
    are concatenated back into the input order: one row per index in ``rows``, or per output position
    ``slots(rows)`` gives (an item that yields several rows, such as a group of sequences)."""
    groups = length_groups(sizes, buckets)
    inputs = [prepare(rows) for rows in groups]
    with module.one_embedding_lookup([x[0] for x in inputs]):
        outputs = [run(*x) for x in inputs]
    inverse = torch.cat([rows if slots is None else slots(rows) for rows in groups]).argsort()
    return tuple(torch.cat(parts)[inverse] for parts in zip(*outputs, strict=True))


class ForwardMode:
    """The interface: ``__call__(module, input_ids, attention_mask)`` with ``(N, T)`` tensors returns
    ``(rewards (N,), hidden (N, H))`` using ``module.padded_forward`` or ``module.packed_forward``."""

    def check(self, pooling: str, attention: str) -> None:
        """Stop at start when this mode cannot run on a backbone that pools at ``pooling`` (``last`` for decoders)
        with attention implementation ``attention``."""

    def __call__(self, module, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def grouped(self, module, input_ids: Tensor, attention_mask: Tensor, sizes: Tensor) -> tuple[Tensor, Tensor]:
        """The same for a batch of consecutive groups of ``sizes`` ``(B,)`` rows that share a prompt; modes that
        treat rows alone ignore the groups."""
        return self(module, input_ids, attention_mask)


class Padded(ForwardMode):
    """One forward pass over the padded batch."""

    def __call__(self, module, input_ids, attention_mask):
        return module.padded_forward(input_ids, attention_mask)


class LengthBuckets(ForwardMode):
    """Sort the rows by length, cut them into the ``buckets`` groups that compute the fewest positions
    (:func:`length_groups`) and run each group trimmed to its longest row. Worth it when lengths in a batch vary
    widely (chosen and rejected often do).

    Args:
        buckets: the number of forward passes per batch.
    """

    def __init__(self, buckets: int = 4) -> None:
        if buckets < 1:
            raise ConfigError(f"LengthBuckets needs buckets >= 1, got {buckets}.")
        self.buckets = buckets

    def __call__(self, module, input_ids, attention_mask):
        def prepare(rows: Tensor) -> tuple[Tensor, Tensor]:
            columns = attention_mask[rows].any(0)  # the bucket's real-token columns: one contiguous span
            return input_ids[rows][:, columns], attention_mask[rows][:, columns]

        return bucketed(module, attention_mask.sum(-1), self.buckets, prepare, module.padded_forward)


class Packed(ForwardMode):
    """Padding-free: one ``(1, S)`` row of all real tokens, positions restarting per sequence (decoders only)."""

    def check(self, pooling: str, attention: str) -> None:
        if pooling != "last" or attention not in PACKING_ATTENTION:
            raise ConfigError(f"Packed forward needs a decoder with attention in {PACKING_ATTENTION} (got pooling "
                              f"{pooling!r}, {attention!r}); use bsr_lightning.reward.forward.LengthBuckets for "
                              "encoders.")

    def __call__(self, module, input_ids, attention_mask):
        mask = attention_mask.bool()
        lengths = mask.sum(-1)  # (N,)
        packed = input_ids[mask].unsqueeze(0)  # (1, S), row-major: sequences one after another
        starts = torch.cumsum(lengths, 0) - lengths  # (N,)
        position_ids = torch.arange(packed.size(1), device=packed.device) - starts.repeat_interleave(lengths)
        return module.packed_forward(packed, position_ids.unsqueeze(0), starts + lengths - 1)


def group_forward(module, groups: list[Group], buckets: int = 1) -> tuple[Tensor, Tensor]:
    """Rewards ``(N,)`` and head inputs ``(N, H)`` of every sequence of ``groups``, group by group, each group
    through the backbone once as one row ``[shared prefix | suffix 1 | ... | suffix k]`` (groups of any sizes), in
    ``buckets`` passes of groups of similar laid-out length (``module.packed_forward`` with the layout's mask)."""
    counts = torch.tensor([len(sequences) for sequences, _ in groups])
    starts = torch.cumsum(counts, 0) - counts

    def prepare(rows: Tensor) -> tuple[Tensor, object]:
        layout = build_rows([groups[i] for i in rows.tolist()], module.tokenizer.pad_token_id or 0)
        return layout.input_ids, layout

    def run(ids: Tensor, layout) -> tuple[Tensor, Tensor]:
        mask = MASKS.get(module.attention, allowed)(layout.segments)
        return module.packed_forward(ids, layout.position_ids, layout.ends, mask)  # group by group

    def slots(rows: Tensor) -> Tensor:  # the sequences of each group, in the output's order
        return torch.cat([torch.arange(starts[i], starts[i] + counts[i]) for i in rows.tolist()])

    sizes = torch.tensor([laid_out_length(group) for group in groups])
    return bucketed(module, sizes, buckets, prepare, run, slots)


class SharedPrefix(ForwardMode):
    """Each group of sequences that share a prompt through the backbone once, as ``[shared prefix | suffix 1 | ... |
    suffix k]`` (decoders only); a batch of pairs is groups of 2, ``[shared prefix | chosen suffix | rejected
    suffix]``.

    The shared prefix is the longest common token prefix of the group's sequences (the prompt, for chat data); each
    suffix attends to it and causally to itself, never to another suffix, with positions continuing from its end;
    each reward and head input is read at its own sequence's last token. Rewards, hidden states and gradients equal
    :class:`Padded`'s (the tests check it for k = 2, 3, 4, 6, both padding sides, mixed prefixes and LoRA). A group
    with no common prefix works too (it is then packed).

    ``sdpa`` takes a boolean and ``eager`` an additive ``(b, 1, L, L)`` mask; ``flex_attention`` a block-sparse
    ``BlockMask`` (the efficient path on GPUs). Padding is removed by cutting the batch into ``buckets`` passes of
    groups of similar laid-out length, each padded to its own longest row (the rewards do not change).

    Args:
        buckets: forward passes per batch; groups are sorted by laid-out length and split into this many passes.
    """

    def __init__(self, buckets: int = 1) -> None:
        if buckets < 1:
            raise ConfigError(f"SharedPrefix needs buckets >= 1, got {buckets}.")
        self.buckets = buckets

    def check(self, pooling: str, attention: str) -> None:
        if pooling != "last" or attention not in SHARED_PREFIX_ATTENTION:
            raise ConfigError(f"SharedPrefix needs a causal decoder with attention in {SHARED_PREFIX_ATTENTION} (got "
                              f"pooling {pooling!r}, attention {attention!r}): one response must not see another. "
                              "Use bsr_lightning.reward.forward.LengthBuckets (any backbone) or set "
                              "model.backbone.attention to sdpa.")

    def grouped(self, module, input_ids, attention_mask, sizes):
        """Each run of ``sizes`` consecutive rows as one group (any sizes), in the input order."""
        mask = attention_mask.bool()
        bounds = torch.cumsum(torch.cat([sizes.new_zeros(1), sizes]), 0).tolist()
        groups = [make_group([input_ids[r][mask[r]] for r in range(a, b)])
                  for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return group_forward(module, groups, self.buckets)

    def __call__(self, module, input_ids, attention_mask, group_size: int = 2):
        """Rewards ``(k B,)`` and head inputs ``(k B, H)`` of a ``(k B, T)`` batch whose group ``g`` is rows ``g, B +
        g, ...`` (:func:`~bsr_lightning.reward.prefix_layout.batch_groups`), in the input order."""
        rewards, hidden = group_forward(module, batch_groups(input_ids, attention_mask, group_size), self.buckets)
        b = input_ids.size(0) // group_size  # group by group -> sequence i of every group together, as the input
        return rewards.view(b, group_size).T.flatten(), hidden.view(b, group_size, -1).transpose(0, 1).flatten(0, 1)
