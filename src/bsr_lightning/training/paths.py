"""Output paths checked before training starts, and the resume-path lookup."""

from __future__ import annotations

import tempfile
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint

from bsr_lightning.errors import UserError

RESUME_IF_PRESENT = "last_if_present"


def check_writable(path: str | Path, what: str) -> None:
    """Create ``path`` (a directory) if needed and check a file can be written there; a :class:`UserError` names
    ``what`` and the path otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UserError(f"{what} {path} is not writable ({err.strerror}); choose another directory or fix its "
                        "permissions. Checked before training so no work is lost.") from None


def output_paths(trainer) -> list[tuple[str, str]]:
    """``(path, what)`` of every directory a ``fit`` will write to: checkpoint directories and the root directory."""
    paths = [(trainer.default_root_dir, "trainer.default_root_dir")]
    paths += [(cb.dirpath, "ModelCheckpoint dirpath") for cb in trainer.checkpoint_callbacks
              if isinstance(cb, ModelCheckpoint) and cb.dirpath]
    return paths


def last_checkpoints(trainer) -> list[str]:
    """The ``last*.ckpt`` files the trainer's ModelCheckpoint callbacks would resume from (Lightning's own lookup)."""
    found = set()
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint):
            found |= callback._find_last_checkpoints(trainer)
    return sorted(found)
