"""Callbacks: export the trained model to a Hugging Face directory at the end of ``fit``."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from bsr_lightning.backbones.export import export_module, save_pretrained_atomic
from bsr_lightning.backbones.sharding import gathered_backbone, is_sharded
from bsr_lightning.files import check_export_dir
from bsr_lightning.training.paths import check_writable


class ExportOnFitEnd(L.Callback):
    """After ``fit``, export the module (``backbone`` + ``tokenizer``) to ``output_dir`` and print where it went,
    with the final validation metrics. Under FSDP/FSDP2 every rank joins in gathering the full weights; rank 0
    writes them.

    The directory is checked when ``fit`` starts: its parent must be writable, and a non-empty directory must be an
    earlier export (or ``overwrite`` set), so no training is lost to a refused export.

    Args:
        output_dir: the Hugging Face directory to write.
        overwrite: write into a non-empty directory that no export wrote (files the export does not write are kept).
    """

    def __init__(self, output_dir: str, overwrite: bool = False) -> None:
        self.output_dir = output_dir
        self.overwrite = overwrite

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            check_export_dir(self.output_dir, self.overwrite)
            check_writable(Path(self.output_dir).resolve().parent, "ExportOnFitEnd output_dir's parent")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.interrupted:
            return
        if is_sharded(trainer):
            backbone = gathered_backbone(trainer, pl_module)
            if backbone is None:
                return
            path = save_pretrained_atomic(backbone, pl_module.tokenizer, self.output_dir, self.overwrite)
        elif trainer.global_rank == 0:
            path = export_module(pl_module, self.output_dir, self.overwrite)
        else:
            return
        metrics = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if "val/accuracy" in metrics:
            print(f"Held-out accuracy (val/accuracy): {metrics['val/accuracy']:.4f}")
        print(f"Exported {type(pl_module).__name__} to {path.resolve()}")
