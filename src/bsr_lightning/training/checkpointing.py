"""Crash-safe checkpoints: atomic writes, a checkpoint on SIGTERM, and RNG state for exact resume.

The CLI installs :class:`AtomicCheckpointIO` (single-process and DDP strategies) and :class:`ResumeState` by default,
so ``fit`` killed by SIGTERM or SIGKILL resumes with ``--ckpt_path last`` where its last checkpoint stopped.
"""

from __future__ import annotations

import logging
import os
import random

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from bsr_lightning.errors import ConfigError
from bsr_lightning.files import atomic_write
from bsr_lightning.lightning_compat import run_validation, validation_follows

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file beside the target, fsync, then ``os.replace``: a crash while saving leaves
    the previous checkpoint intact (remote paths fall back to Lightning's default writer)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if not isinstance(get_filesystem(path), type(get_filesystem("."))):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_write(path, "wb") as handle:
            torch.save(checkpoint, handle)


class ResumeState(L.Callback):
    """Save the Python, NumPy, torch CPU and CUDA RNG states with every checkpoint and restore them on resume
    (sampling in RLOO then continues identically), and write ``last.ckpt`` when the run is stopped by SIGTERM.

    The states are restored just before the first training batch after the resume, so whatever Lightning runs in
    between (sanity validation, loader creation) does not shift the stream.

    A checkpoint saved at a training batch's end that a validation follows (the last batch of an epoch, say) records
    it; a run resumed from it runs that validation first, as the uninterrupted run did, so a run stopped during its
    last validation still ends with that validation's metrics (Lightning counts it as done)."""

    _pending: dict | None = None
    _trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict:
        np_state = np.random.get_state()
        state = {"python": random.getstate(), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
                 "torch": torch.get_rng_state(),
                 "validation_follows": self._trainer is not None and validation_follows(self._trainer)}
        if torch.cuda.is_available():  # one generator per visible GPU: sampling on GPUs draws from these
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None and self._pending.pop("validation_follows", False):
            run_validation(trainer)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self._pending is None:
            return
        state_dict, self._pending = self._pending, None
        random.setstate(_as_tuples(state_dict["python"]))
        kind, keys, *rest = state_dict["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
        if checkpoint is None or checkpoint.dirpath is None:
            log.warning("SIGTERM: no ModelCheckpoint with a dirpath; nothing saved.")
            return
        path = os.path.join(checkpoint.dirpath, f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}")
        trainer.save_checkpoint(path)
        print(f"SIGTERM received: saved {path} at step {trainer.global_step}; resume with --ckpt_path last",
              flush=True)


def _as_tuples(value):
    """Lists back to tuples (checkpoints may store Python's RNG state tuples as lists)."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list | tuple) else value


class PeriodicCheckpoint(ModelCheckpoint):
    """Crash recovery for every shipped config: ``last.ckpt`` every ``every_n_train_steps`` optimizer steps (and at
    the end of each epoch), in ``dirpath`` or, by default, ``<trainer.default_root_dir>/checkpoints`` (not a
    per-version logger directory), so ``--ckpt_path last`` finds it on the next run. A resumed run writes the same
    ``last.ckpt`` (atomically), so ``last.ckpt`` is always the newest.

    Args:
        every_n_train_steps: steps between saves.
        dirpath: where ``last.ckpt`` goes; None for ``<default_root_dir>/checkpoints``.
    """

    def __init__(self, every_n_train_steps: int = 50, dirpath: str | None = None) -> None:
        if every_n_train_steps < 1:
            raise ConfigError(f"PeriodicCheckpoint every_n_train_steps must be at least 1, got {every_n_train_steps}.")
        # no version counter: a resumed run writes last.ckpt again, never last-v1.ckpt beside an older last.ckpt
        super().__init__(dirpath=dirpath, every_n_train_steps=every_n_train_steps, save_last=True, save_top_k=0,
                         enable_version_counter=False)

    def resolved_dirpath(self, trainer: L.Trainer) -> str:
        """``dirpath``, or ``<trainer.default_root_dir>/checkpoints`` when none was given."""
        return self.dirpath or os.path.join(trainer.default_root_dir, "checkpoints")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.dirpath = self.resolved_dirpath(trainer)
        super().setup(trainer, pl_module, stage)
