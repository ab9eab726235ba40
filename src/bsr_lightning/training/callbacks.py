"""Callbacks: export the trained model to a Hugging Face directory at the end of ``fit``."""

from __future__ import annotations

import lightning as L

from bsr_lightning.backbones.export import export_module, save_pretrained_atomic
from bsr_lightning.backbones.sharding import gathered_backbone, is_sharded


class ExportOnFitEnd(L.Callback):
    """After ``fit``, export the module (``backbone`` + ``tokenizer``) to ``output_dir`` and print where it went,
    with the final validation metrics. Under FSDP/FSDP2 every rank joins in gathering the full weights; rank 0
    writes them.

    Args:
        output_dir: the Hugging Face directory to write (atomically).
    """

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.interrupted:
            return
        if is_sharded(trainer):
            backbone = gathered_backbone(trainer, pl_module)
            if backbone is None:
                return
            path = save_pretrained_atomic(backbone, pl_module.tokenizer, self.output_dir)
        elif trainer.global_rank == 0:
            path = export_module(pl_module, self.output_dir)
        else:
            return
        metrics = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if "val/accuracy" in metrics:
            print(f"Held-out accuracy (val/accuracy): {metrics['val/accuracy']:.4f}")
        print(f"Exported {type(pl_module).__name__} to {path.resolve()}")
