"""Crash-safe checkpoints: atomic writes, a checkpoint on SIGTERM, and RNG state for exact resume.

The CLI installs :class:`AtomicCheckpointIO` (single-process and DDP strategies) and :class:`ResumeState` by default,
so ``fit`` killed by SIGTERM or SIGKILL resumes with ``--ckpt_path last`` where its last checkpoint stopped.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file beside the target, fsync, then ``os.replace``: a crash while saving leaves
    the previous checkpoint intact (remote paths fall back to Lightning's default writer)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if not isinstance(get_filesystem(path), type(get_filesystem("."))):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class ResumeState(L.Callback):
    """Save the Python, NumPy and torch RNG states with every checkpoint and restore them on resume (sampling in RLOO
    then continues identically), and write ``last.ckpt`` when the run is stopped by SIGTERM.

    The states are restored just before the first training batch after the resume, so whatever Lightning runs in
    between (sanity validation, loader creation) does not shift the stream."""

    _pending: dict | None = None

    def state_dict(self) -> dict:
        np_state = np.random.get_state()
        return {"python": random.getstate(), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
                "torch": torch.get_rng_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending = state_dict

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self._pending is None:
            return
        state_dict, self._pending = self._pending, None
        random.setstate(_as_tuples(state_dict["python"]))
        kind, keys, *rest = state_dict["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
        torch.set_rng_state(state_dict["torch"])

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
