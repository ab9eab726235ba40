"""Forward modes of the reward model: how a padded batch of sequences goes through the backbone. The cost changes,
the scores do not.

* :class:`Padded`: one forward over the ``(N, T)`` padded batch (the default).
* :class:`LengthBuckets`: rows sorted by length and cut into buckets, each trimmed to its own longest row: less
  padding for any backbone (encoders included).
* :class:`Packed`: padding-free: all sequences concatenated into one ``(1, S)`` row with position ids restarting at
  each sequence, which transformers turns into a block-diagonal causal mask (``sdpa``, ``eager``) or ``cu_seqlens``
  (``flash_attention_2``); the reward is read at each sequence's last token. Decoders only.

Each returns rewards ``(N,)`` and the head-input hidden states ``(N, H)`` in the input order; tests check they are
equal to :class:`Padded`'s.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bsr_lightning.errors import ConfigError

PACKING_ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")


class ForwardMode:
    """The interface: ``__call__(module, input_ids, attention_mask)`` with ``(N, T)`` tensors returns
    ``(rewards (N,), hidden (N, H))`` using ``module.padded_forward`` or ``module.packed_forward``."""

    def __call__(self, module, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class Padded(ForwardMode):
    """One forward pass over the padded batch."""

    def __call__(self, module, input_ids, attention_mask):
        return module.padded_forward(input_ids, attention_mask)


class LengthBuckets(ForwardMode):
    """Sort the rows by length, cut them into ``buckets`` groups of about equal size and run each group trimmed to
    its longest row. Worth it when lengths in a batch vary widely (chosen and rejected often do).

    Args:
        buckets: the number of forward passes per batch.
    """

    def __init__(self, buckets: int = 4) -> None:
        if buckets < 1:
            raise ConfigError(f"LengthBuckets needs buckets >= 1, got {buckets}.")
        self.buckets = buckets

    def __call__(self, module, input_ids, attention_mask):
        order = attention_mask.sum(-1).argsort()  # (N,) shortest first
        rewards, hidden = [], []
        for rows in order.tensor_split(min(self.buckets, len(order))):
            columns = attention_mask[rows].any(0)  # the bucket's real-token columns: one contiguous span
            r, h = module.padded_forward(input_ids[rows][:, columns], attention_mask[rows][:, columns])
            rewards.append(r)
            hidden.append(h)
        inverse = order.argsort()
        return torch.cat(rewards)[inverse], torch.cat(hidden)[inverse]


class Packed(ForwardMode):
    """Padding-free: one ``(1, S)`` row of all real tokens, positions restarting per sequence (decoders only)."""

    def __call__(self, module, input_ids, attention_mask):
        mask = attention_mask.bool()
        lengths = mask.sum(-1)  # (N,)
        packed = input_ids[mask].unsqueeze(0)  # (1, S), row-major: sequences one after another
        starts = torch.cumsum(lengths, 0) - lengths  # (N,)
        position_ids = torch.arange(packed.size(1), device=packed.device) - starts.repeat_interleave(lengths)
        return module.packed_forward(packed, position_ids.unsqueeze(0), starts + lengths - 1)
