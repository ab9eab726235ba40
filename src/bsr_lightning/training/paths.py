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


def checkpoint_dirs(trainer) -> list[str]:
    """The folders the trainer's ModelCheckpoint callbacks write to (``PeriodicCheckpoint``'s default included)."""
    dirs = set()
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint):
            dirpath = callback.dirpath
            if dirpath is None and hasattr(callback, "resolved_dirpath"):
                dirpath = callback.resolved_dirpath(trainer)
            if dirpath:
                dirs.add(str(dirpath))
    return sorted(dirs)


def last_checkpoints(trainer) -> list[str]:
    """The ``last*.ckpt`` files in the folders of the trainer's ModelCheckpoint callbacks (a ``PeriodicCheckpoint``
    without ``dirpath`` writes to ``<default_root_dir>/checkpoints``), as Lightning's ``ckpt_path="last"`` finds
    them."""
    return sorted(str(p) for d in checkpoint_dirs(trainer) for p in Path(d).glob("last*.ckpt"))
