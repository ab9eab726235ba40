"""Callbacks: export the trained model to a Hugging Face directory at the end of ``fit``."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import lightning as L

from bsr_lightning.backbones.export import export_module
from bsr_lightning.backbones.hub import check_push, push_to_hub
from bsr_lightning.backbones.sharding import gathered_backbone, is_sharded
from bsr_lightning.errors import UserError
from bsr_lightning.files import check_export_dir, export_run, export_run_id
from bsr_lightning.training.paths import check_writable


class ExportOnFitEnd(L.Callback):
    """After ``fit``, export the module (``backbone`` + ``tokenizer``) to ``output_dir`` and print where it went,
    with the final validation metrics. Under FSDP/FSDP2 every rank joins in gathering the full weights; rank 0
    writes them.

    The directory is checked when ``fit`` starts: its parent must be writable, and a non-empty directory must be an
    earlier export of the same command (or ``overwrite`` set), so no training is lost to a refused export and no
    run replaces another run's export unasked.

    The run's identity (kept in its checkpoints, so a resumed or extended run is the same run) is recorded in the
    export; the export is refused when another run wrote one into the same folder while this one trained.

    The export holds a model card (``README.md``: what trained it, the final validation metrics, a usage snippet)
    and the resolved config (``training_config.yaml``).

    Args:
        output_dir: the Hugging Face directory to write; None: ``reward_model`` (or ``policy``) inside
            ``trainer.default_root_dir``, so a run with another root never touches this one's export.
        overwrite: write into a non-empty directory that no export wrote (files the export does not write are kept).
        push_to_hub: a hub repo id (``user/name``) to upload the export to after writing it (token from ``HF_TOKEN``
            or ``hf auth login``, never printed).
        private: create the hub repo private.
        license: the license for the model card (an SPDX id such as ``apache-2.0``), when known.
    """

    def __init__(self, output_dir: str | None = None, overwrite: bool = False, push_to_hub: str | None = None,
                 private: bool = False, license: str | None = None) -> None:
        self.output_dir = output_dir
        self.overwrite = overwrite
        self.push_to_hub = push_to_hub
        self.private = private
        self.license = license
        self.run_id = uuid.uuid4().hex
        self._seen: str | None = None

    def state_dict(self) -> dict:
        return {"run_id": self.run_id}

    def load_state_dict(self, state_dict: dict) -> None:
        if isinstance(state_dict.get("run_id"), str):
            self.run_id = state_dict["run_id"]  # a resumed run is the run that wrote the checkpoint

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.output_dir is None:
            self.output_dir = str(Path(trainer.default_root_dir) / getattr(pl_module, "export_name", "model"))
        if stage == "fit":
            check_export_dir(self.output_dir, self.overwrite)
            if self.push_to_hub:
                check_push(self.push_to_hub)
            check_writable(Path(self.output_dir).resolve().parent, "ExportOnFitEnd output_dir's parent")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """After a resume has restored this run's identity and before the first step: the another-run check."""
        self._seen = export_run_id(self.output_dir) or ""
        self._check_same_run(pl_module)

    def _check_same_run(self, pl_module: L.LightningModule) -> None:
        """Refuse to replace an export that another command wrote, unless ``overwrite``: a run resumed or extended
        from its checkpoint (``--ckpt_path``, a higher ``max_steps``) is the same run, and so is the same command
        run again. A run that started in parallel is refused when it exports (:func:`save_pretrained_atomic`)."""
        earlier, now = export_run(self.output_dir), getattr(pl_module, "run_record", {}).get("command")
        if self.overwrite or earlier is None and not self._seen or self._seen == self.run_id:
            return
        if _without_resume(earlier) != _without_resume(now):
            raise UserError(f"{self.output_dir} holds the export of another run ({earlier}); this run would replace "
                            "it. Give this run another --trainer.default_root_dir (the export follows it), another "
                            "--trainer.callbacks.output_dir, or overwrite: true.")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.interrupted:
            return
        backbone = gathered_backbone(trainer, pl_module) if is_sharded(trainer) else None
        if trainer.global_rank != 0:
            return
        metrics = pl_module.latest_val_metrics()
        path = export_module(pl_module, self.output_dir, self.overwrite, metrics, self.license,
                             location=self.push_to_hub, backbone=backbone, run_id=self.run_id,
                             expect_run_id=self._seen)
        if "val/accuracy" in metrics:
            print(f"Held-out accuracy (val/accuracy): {metrics['val/accuracy']:.4f}")
        print(f"Exported {type(pl_module).__name__} to {path.resolve()}")
        if self.push_to_hub:
            push_to_hub(path, self.push_to_hub, self.private)


def _without_resume(command: str | None) -> str | None:
    """``command`` without its ``--ckpt_path VALUE`` (a resumed run is the same run)."""
    return None if command is None else re.sub(r"\s--ckpt_path(=|\s+)\S+", "", command)
