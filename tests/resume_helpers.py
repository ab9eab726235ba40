"""Callbacks for the kill-and-resume tests, loaded by import path in subprocess runs."""

import json
import os
import signal

import lightning as L


class RecordBatches(L.Callback):
    """Append ``{"step", "row_ids", "loss", "train/..."}`` of every training batch to a JSON-lines file (the loss
    returned by ``training_step``, or the logged ``train/loss`` under manual optimization)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        loss = trainer.callback_metrics["train/loss"] if loss is None else loss
        logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
        row = {"step": trainer.global_step, "row_ids": batch["row_ids"].tolist(), "loss": float(loss), **logged}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")


class KillAt(L.Callback):
    """Send ``signal_name`` to this process after optimizer step ``step`` (before that step's checkpoint)."""

    def __init__(self, step: int, signal_name: str = "SIGTERM") -> None:
        self.step = step
        self.signal_name = signal_name

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.signal_name))


class KillInValidation(L.Callback):
    """SIGKILL this process in the first validation batch after optimizer step ``step`` (a stop during the
    validation that follows a checkpointed training batch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.global_step == self.step and not trainer.sanity_checking:
            os.kill(os.getpid(), signal.SIGKILL)
