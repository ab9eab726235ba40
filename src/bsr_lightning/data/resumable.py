"""Exact mid-epoch resume: samplers whose order depends only on ``(seed, epoch)``, and a DataModule state that
records how many batches of the epoch were trained on, so a resumed run continues the same order without repeating
or skipping a batch. The count comes from the trainer's batch progress, not from the iterator, because Lightning
prefetches one batch ahead of training.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from bsr_lightning.lightning_compat import batches_done_this_epoch


class SkippableSampler(DistributedSampler):
    """A sampler deterministic in ``(seed, epoch)`` whose next pass can start ``skip_next(count)`` indices in.

    Under ``torch.distributed`` each rank takes every ``world_size``-th unit of the epoch's order (a unit is one
    index, or one batch for samplers that group batches, ``shard_unit``); the unit count is padded to a multiple of
    the world size by repeating the first units, as ``DistributedSampler`` does, so every rank runs the same number
    of steps. Being a ``DistributedSampler``, Lightning uses it as is and calls ``set_epoch`` on it each epoch.
    """

    epoch = 0
    _skip = 0
    shard_unit = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip_next(self, count: int) -> None:
        """Start the next pass ``count`` indices into this rank's share of the epoch."""
        self._skip = count

    def order(self) -> list[int]:
        """The epoch's full index order (all ranks)."""
        raise NotImplementedError

    def rank_order(self) -> list[int]:
        """This rank's share of :meth:`order`."""
        order = self.order()
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return order
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        units = [order[i : i + self.shard_unit] for i in range(0, len(order), self.shard_unit)]
        units += units[: (-len(units)) % world]
        return [i for unit in units[rank::world] for i in unit]

    def __len__(self) -> int:
        return len(self.rank_order())

    def __iter__(self):
        skip, self._skip = self._skip, 0
        yield from self.rank_order()[skip:]


class EpochShuffleSampler(SkippableSampler):
    """A permutation of ``range(n)`` drawn from ``(seed, epoch)``; call ``set_epoch`` each epoch (Lightning does)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n = n
        self.seed = seed

    def order(self) -> list[int]:
        return np.random.default_rng((self.seed, self.epoch)).permutation(self.n).tolist()


class ResumableData:
    """DataModule mixin: the checkpoint records the epoch and the batches the trainer processed in it; after a
    resume, the training loader's sampler is set to that epoch and starts after those batches (nothing is loaded for
    them). Lightning saves and restores a DataModule's ``state_dict``."""

    _resume_state: dict | None = None

    def state_dict(self) -> dict:
        trainer = getattr(self, "trainer", None)
        if trainer is None or not trainer.training:
            return {}
        return {"epoch": int(trainer.current_epoch), "batches_done": batches_done_this_epoch(trainer)}

    def load_state_dict(self, state_dict: dict) -> None:
        self._resume_state = dict(state_dict) or None

    def resumable_loader(self, dataset, sampler: SkippableSampler, batch_size: int, **kwargs) -> DataLoader:
        """A training DataLoader over ``sampler`` that continues a restored epoch where it stopped."""
        if self._resume_state:
            sampler.set_epoch(self._resume_state["epoch"])  # Lightning sets the epoch only after the first fetch
            sampler.skip_next(self._resume_state["batches_done"] * batch_size)
            self._resume_state = None
        return rng_free_loader(dataset, batch_size=batch_size, sampler=sampler, **kwargs)


def rng_free_loader(dataset, **kwargs) -> DataLoader:
    """A DataLoader with its own generator: creating its iterator (each epoch, each validation) does not draw from
    the global torch RNG, so sampling in training steps does not depend on when loaders were created (exact
    resume). Workers' base seeds come from that generator."""
    return DataLoader(dataset, generator=torch.Generator().manual_seed(0), **kwargs)
