"""Dynamic padding and length-grouped sampling for preference pairs."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from bsr_lightning.data.encoding import EncodedPair
from bsr_lightning.data.resumable import SkippableSampler


class PairDataset(Dataset):
    """A list of :class:`EncodedPair`."""

    def __init__(self, pairs: list[EncodedPair]) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> EncodedPair:
        return self.pairs[index]

    def lengths(self) -> np.ndarray:
        """``(N,)`` the longer side of each pair, in tokens."""
        return np.array([max(len(p.chosen), len(p.rejected)) for p in self.pairs])


def pad_sequences(seqs: list[np.ndarray], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad int sequences to one length. Returns ``input_ids`` and ``attention_mask``, both ``(N, T)``."""
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, seq in enumerate(seqs):
        span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        input_ids[i, span] = torch.as_tensor(seq, dtype=torch.long)
        mask[i, span] = 1
    return input_ids, mask


class PairCollator:
    """Stack a batch of B pairs into one ``(2B, T)`` batch: rows ``0..B-1`` chosen, ``B..2B-1`` rejected.

    Output keys: ``input_ids`` and ``attention_mask`` ``(2B, T)``, ``row_ids`` ``(B,)``, and ``margin`` ``(B,)`` when
    every pair has one.
    """

    def __init__(self, pad_id: int, padding_side: str = "right") -> None:
        self.pad_id = pad_id
        self.padding_side = padding_side

    def __call__(self, pairs: list[EncodedPair]) -> dict[str, torch.Tensor]:
        seqs = [p.chosen for p in pairs] + [p.rejected for p in pairs]
        input_ids, attention_mask = pad_sequences(seqs, self.pad_id, self.padding_side)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "row_ids": torch.tensor([p.row_id for p in pairs], dtype=torch.long)}
        if all(p.margin is not None for p in pairs):
            batch["margin"] = torch.tensor([p.margin for p in pairs], dtype=torch.float32)
        return batch


class LengthGroupedSampler(SkippableSampler):
    """Shuffle, then sort by length inside windows of ``batch_size * window`` items, then shuffle the batches.

    Batches hold pairs of similar length (less padding) while the order stays random. Deterministic in
    ``(seed, epoch)``; call ``set_epoch`` each epoch (Lightning does).
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int = 0, window: int = 50) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.window = window

    @property
    def shard_unit(self) -> int:  # ranks take whole batches, so each keeps similar lengths together
        return self.batch_size

    def order(self) -> list[int]:
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(len(self.lengths))
        size = self.batch_size * self.window
        chunks = [order[i : i + size] for i in range(0, len(order), size)]
        order = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks])
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return [i for b in rng.permutation(len(batches)) for i in batches[b].tolist()]
