"""Callbacks for the kill-and-resume tests, loaded by import path in subprocess runs."""

import json
import os
import signal

import lightning as L


class RecordBatches(L.Callback):
    """Append ``{"step", "row_ids", "loss"}`` of every training batch to a JSON-lines file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        row = {"step": trainer.global_step, "row_ids": batch["row_ids"].tolist(),
               "loss": float(outputs["loss"] if isinstance(outputs, dict) else outputs)}
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
