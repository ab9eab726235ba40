"""DDP with 2 gloo processes on CPU: disjoint data, a global BSR penalty, equal weights on both ranks at the end."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO

WEIGHT = 0.1


@pytest.fixture(scope="module")
def ddp_run(tiny_llama, tmp_path_factory):
    from bsr_lightning.data.synthetic import generate_preference_rows
    from conftest import write_jsonl

    root = tmp_path_factory.mktemp("ddp")
    data = write_jsonl(root / "prefs.jsonl", generate_preference_rows(40, seed=3))
    args = [sys.executable, "-m", "bsr_lightning", "fit", "--model", "bsr_lightning.RewardModel",
            "--model.model_name_or_path", tiny_llama, "--model.lr", "1e-3",
            "--model.regularizer", "bsr_lightning.regularizers.BatchSumToZero", "--model.regularizer.weight", str(WEIGHT),
            "--model.regularizer.scope", "global", "--data", "bsr_lightning.PreferenceDataModule",
            "--data.path", data, "--data.batch_size", "4", "--data.val_fraction", "0.2", "--data.max_length", "128",
            "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", "2",
            "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(root), "--trainer.logger", "false",
            "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
            "--seed_everything", "0", "--trainer.callbacks+=ddp_helpers.RecordRank",
            "--trainer.callbacks.out_dir", str(root)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    steps = [[json.loads(line) for line in open(root / f"steps_rank{r}.jsonl")] for r in (0, 1)]
    return root, steps


def test_ranks_end_with_equal_weights(ddp_run):
    root, _ = ddp_run
    w0, w1 = (torch.load(root / f"weights_rank{r}.pt", weights_only=True) for r in (0, 1))
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)


def test_ranks_see_disjoint_halves_of_each_epoch(ddp_run):
    _, (rank0, rank1) = ddp_run
    assert len(rank0) == len(rank1) == 8  # 30 train pairs / (2 ranks x 4) = 4 steps x 2 epochs
    covered = []
    for epoch in (0, 1):
        seen = [[i for s in rank if s["epoch"] == epoch for i in s["row_ids"]] for rank in (rank0, rank1)]
        assert not set(seen[0]) & set(seen[1])  # no pair on both ranks
        covered.append(sorted(seen[0] + seen[1]))
    assert covered[0] == covered[1] and len(covered[0]) == 30  # every train pair once per epoch
    epoch_order = [[i for s in rank0 if s["epoch"] == e for i in s["row_ids"]] for e in (0, 1)]
    assert epoch_order[0] != epoch_order[1]  # reshuffled per epoch


def test_global_bsr_penalty_uses_both_ranks_rewards(ddp_run):
    _, (rank0, rank1) = ddp_run
    for s0, s1 in zip(rank0, rank1, strict=True):
        rewards = torch.tensor(s0["rewards"] + s1["rewards"], dtype=torch.float64)  # 2 ranks x 2B
        expected = WEIGHT * (rewards.numel() // 2) * rewards.mean() ** 2
        assert s0["penalty"] == pytest.approx(float(expected), rel=1e-3, abs=1e-7)
        assert s1["penalty"] == pytest.approx(s0["penalty"], rel=1e-5, abs=1e-9)
