"""The one place that reaches into Lightning's internals, where no public API does the job (lightning 2.6):

* :func:`load_sharded_checkpoint`: a sharded (FSDP/FSDP2) checkpoint folder as one plain dict, read as Lightning's
  ``_load_distributed_checkpoint`` reads it (torch's public ``dcp_to_torch_save`` keeps the keys flattened) but with
  nothing unpickled that could run code: torch's ``FileSystemReader`` reads ``.metadata`` with plain ``pickle.load``
  and its load planner reads byte items with ``torch.load(weights_only=False)``. Here ``.metadata`` goes through
  :class:`MetadataUnpickler` (torch's checkpoint metadata classes only) and byte items through
  ``weights_only=True``. Pinned by ``tests/test_ddp.py::test_fsdp2_sharded_checkpoint_exports_the_full_model`` and
  ``tests/test_code_gate.py``.
* :func:`batches_done_this_epoch`: the training batches processed in the current epoch (the loop's progress
  counter; Lightning has no public getter). Pinned by ``tests/test_resume.py``.
* :func:`attached_trainer`: a module's Trainer or None (the public ``trainer`` property raises when none is
  attached).
* :func:`validation_follows` and :func:`run_validation`: whether the fit loop validates after the training batch
  being saved now, and that validation run by hand. A checkpoint saved at ``on_train_batch_end`` (a periodic
  ``last.ckpt``) comes before the validation that follows the batch; on resume Lightning counts that validation as
  done, so a run stopped during it skipped it (its last metrics were missing). Pinned by ``tests/test_resume.py``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

METADATA_CLASSES = {
    "torch.distributed.checkpoint.metadata": {"Metadata", "TensorStorageMetadata", "TensorProperties",
                                              "ChunkStorageMetadata", "BytesStorageMetadata", "MetadataIndex",
                                              "StorageMeta", "_MEM_FORMAT_ENCODING"},
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch._utils": {"_get_layout"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size"},
    "pathlib": {"PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"},
    "collections": {"OrderedDict"},
}
"""The globals a torch distributed-checkpoint ``.metadata`` pickle refers to (torch 2.4-2.13), besides dtypes."""


class MetadataUnpickler(pickle.Unpickler):
    """Unpickles a ``.metadata`` file, refusing every global but torch's checkpoint metadata classes and dtypes: a
    forged file naming ``os.system`` (or anything else) raises ``pickle.UnpicklingError`` before it is called."""

    def find_class(self, module: str, name: str):
        if name in METADATA_CLASSES.get(module, ()) or (module == "torch" and isinstance(getattr(torch, name, None),
                                                                                         torch.dtype)):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not a checkpoint metadata class")


def load_sharded_checkpoint(path: Path) -> dict:
    """The full checkpoint dict of a sharded checkpoint folder, consolidated on CPU, with nothing in it able to run
    code (a forged file raises ``pickle.UnpicklingError``)."""
    from lightning.fabric.utilities.load import _METADATA_FILENAME
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.format_utils import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.metadata import StorageMeta
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    with open(Path(path) / ".metadata", "rb") as handle:  # read (and refused) here, before torch's reader runs
        metadata = MetadataUnpickler(handle).load()

    class PlainReader(FileSystemReader):
        def read_metadata(self, *args, **kwargs):
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    class PlainPlanner(_EmptyStateDictLoadPlanner):
        def load_bytes(self, read_item, value) -> None:
            from torch.distributed.checkpoint._traverse import set_element

            loaded = torch.load(value, map_location="cpu", weights_only=True)
            if self.flatten_state_dict:
                set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], loaded)
            else:
                self.state_dict[read_item.dest_index.fqn] = loaded

    checkpoint: dict = {}
    _load_state_dict(checkpoint, storage_reader=PlainReader(path), planner=PlainPlanner(), no_dist=True)
    extra_file = Path(path) / _METADATA_FILENAME  # Lightning's user data beside the shards
    checkpoint.update(torch.load(extra_file, map_location="cpu", weights_only=True) if extra_file.is_file() else {})
    return checkpoint


def batches_done_this_epoch(trainer) -> int:
    """Training batches the fit loop has processed in the current epoch."""
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)


def attached_trainer(module):
    """``module``'s Trainer, or None when it is not attached to one."""
    try:
        return module.trainer
    except RuntimeError:
        return None


def validation_follows(trainer) -> bool:
    """True when the fit loop, now inside a training batch's end, will validate after it (Lightning's own rule)."""
    if not trainer.training or trainer.sanity_checking or trainer.validating:
        return False
    loop = trainer.fit_loop
    return bool(loop.epoch_loop._should_check_val_fx(loop._data_fetcher))


def run_validation(trainer) -> None:
    """Run the fit loop's validation now, as the training epoch loop runs it between batches."""
    loop = trainer.fit_loop.epoch_loop
    trainer.validating = True
    first_loop_iter = trainer._logger_connector._first_loop_iter
    loop.val_loop.restarting = False  # a fresh validation: not the restored progress of the one before
    loop.val_loop.run()
    trainer.training = True
    trainer._logger_connector._first_loop_iter = first_loop_iter
