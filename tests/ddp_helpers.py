"""A callback for the 2-process DDP test, loaded by import path in the subprocess run."""

import json
from pathlib import Path

import lightning as L
import torch

from bsr_lightning.reward.regularizers import BatchSumToZero, PairOutputs


class RecordRank(L.Callback):
    """Per rank: each step's row ids, rewards before the update and logged penalty (``steps_rank{R}.jsonl``), and
    the final weights (``weights_rank{R}.pt``) or, when sharded, the local shard shapes (``shards_rank{R}.json``),
    in ``out_dir``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self._rewards: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._rewards = pl_module.score(batch["input_ids"], batch["attention_mask"]).tolist()  # (2B,)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        row = {"step": trainer.global_step, "epoch": trainer.current_epoch, "row_ids": batch["row_ids"].tolist(),
               "rewards": self._rewards, "penalty": float(trainer.callback_metrics.get("train/penalty_step", -1)),
               "skipped": pl_module.guard.skipped}
        with open(self.out_dir / f"steps_rank{trainer.global_rank}.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def on_fit_end(self, trainer, pl_module) -> None:
        params = dict(pl_module.named_parameters())
        sharded = {n: list(p.to_local().shape) for n, p in params.items() if hasattr(p, "to_local")}
        (self.out_dir / f"shards_rank{trainer.global_rank}.json").write_text(json.dumps(sharded))
        if not sharded:
            torch.save(pl_module.state_dict(), self.out_dir / f"weights_rank{trainer.global_rank}.pt")


class NaNOnRankZero(BatchSumToZero):
    """BSR whose penalty is NaN on rank 0 at its second training batch (validation calls have no gradient)."""

    def __init__(self, weight: float = 1e-3, scope: str = "device") -> None:
        super().__init__(weight, scope)
        self.train_calls = 0

    def penalty(self, out: PairOutputs):
        penalty = super().penalty(out)
        if out.chosen.requires_grad:
            self.train_calls += 1
            if self.train_calls == 2 and torch.distributed.get_rank() == 0:
                return penalty * float("nan")
        return penalty
