"""Callbacks: export the trained model to a Hugging Face directory at the end of ``fit``."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from bsr_lightning.export import export_module


class ExportOnFitEnd(L.Callback):
    """After ``fit``, export the module (``backbone`` + ``tokenizer``) to ``output_dir`` and print where it went,
    with the final validation metrics.

    Args:
        output_dir: the Hugging Face directory to write (atomically).
    """

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.interrupted:
            return
        path = export_module(pl_module, self.output_dir)
        metrics = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if "val/accuracy" in metrics:
            print(f"Held-out accuracy (val/accuracy): {metrics['val/accuracy']:.4f}")
        print(f"Exported {type(pl_module).__name__} to {path.resolve()}")
