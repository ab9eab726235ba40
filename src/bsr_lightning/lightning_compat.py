"""The one place that reaches into Lightning's internals, where no public API does the job (lightning 2.6):

* :func:`load_sharded_checkpoint`: a sharded (FSDP/FSDP2) checkpoint folder as one plain dict. torch's public
  ``dcp_to_torch_save`` keeps the keys flattened (``hyper_parameters`` is missing at the top), and Lightning's loader
  rebuilds the nesting Lightning wrote. Pinned by
  ``tests/test_ddp.py::test_fsdp2_sharded_checkpoint_exports_the_full_model``.
* :func:`batches_done_this_epoch`: the training batches processed in the current epoch (the loop's progress
  counter; Lightning has no public getter). Pinned by ``tests/test_resume.py``.
* :func:`attached_trainer`: a module's Trainer or None (the public ``trainer`` property raises when none is
  attached).
"""

from __future__ import annotations

from pathlib import Path


def load_sharded_checkpoint(path: Path) -> dict:
    """The full checkpoint dict of a sharded checkpoint folder, consolidated on CPU."""
    from lightning.fabric.utilities.load import _load_distributed_checkpoint

    return _load_distributed_checkpoint(path)


def batches_done_this_epoch(trainer) -> int:
    """Training batches the fit loop has processed in the current epoch."""
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)


def attached_trainer(module):
    """``module``'s Trainer, or None when it is not attached to one."""
    try:
        return module.trainer
    except RuntimeError:
        return None
