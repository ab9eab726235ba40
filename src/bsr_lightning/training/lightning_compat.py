"""The one place that reaches into Lightning's internals, where no public API does the job (lightning 2.6):

* :func:`load_sharded_checkpoint`: a sharded (FSDP/FSDP2) checkpoint folder as one plain dict. torch's public
  ``dcp_to_torch_save`` keeps the keys flattened (``hyper_parameters`` is missing at the top), and Lightning's loader
  rebuilds the nesting Lightning wrote. Pinned by
  ``tests/test_ddp.py::test_fsdp2_sharded_checkpoint_exports_the_full_model``.
"""

from __future__ import annotations

from pathlib import Path


def load_sharded_checkpoint(path: Path) -> dict:
    """The full checkpoint dict of a sharded checkpoint folder, consolidated on CPU."""
    from lightning.fabric.utilities.load import _load_distributed_checkpoint

    return _load_distributed_checkpoint(path)
