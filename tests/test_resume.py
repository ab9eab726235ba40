"""Kill a fit mid-epoch (SIGTERM, SIGKILL), resume with --ckpt_path last: same data order, same final metrics."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bsr_lightning.training.checkpointing import AtomicCheckpointIO
from conftest import REPO


def fit(model: str, data: str, root: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_fit(root, "--model", "bsr_lightning.RewardModel", "--model.backbone.name", model,
                   "--model.optimization.lr", "1e-3", "--data", "bsr_lightning.PreferenceDataModule",
                   "--data.path", data,
                   "--data.batch_size", "4", "--data.val_fraction", "0.25", "--data.max_length", "128",
                   "--trainer.max_epochs", "2", *extra)


def fit_rloo(root: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_fit(root, "--model", "bsr_lightning.RLOOPolicy", "--model.backbone.name", "tiny:synthetic",
                   "--model.reward", "bsr_lightning.rloo.rewards.FunctionReward",
                   "--model.reward.import_path", "reward_fns:length_words", "--model.sampling.k", "2",
                   "--model.sampling.max_new_tokens", "8",
                   "--model.optimization.lr", "1e-3", "--data", "bsr_lightning.SyntheticPromptDataModule",
                   "--data.batch_size", "4", "--data.num_val_prompts", "4", "--trainer.max_steps", "6",
                   "--trainer.val_check_interval", "2", "--trainer.check_val_every_n_epoch", "null", *extra)


def run_fit(root: Path, *args: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "bsr_lightning", "fit", *args,
            "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(root),
            "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1", "--seed_everything", "0",
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            "--trainer.callbacks.dirpath", str(root / "ckpt"), "--trainer.callbacks.every_n_train_steps", "1",
            "--trainer.callbacks.save_last", "true",
            "--trainer.callbacks+=resume_helpers.RecordBatches",
            "--trainer.callbacks.path", str(root / "batches.jsonl"),
            ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)


def batches(root: Path) -> dict[int, dict]:
    """Step -> batch; a step redone after a kill keeps its last record."""
    return {row["step"]: row for row in map(json.loads, open(root / "batches.jsonl"))}


def final_val(root: Path) -> dict[str, float]:
    rows = []
    for path in sorted(root.glob("lightning_logs/version_*/metrics.csv")):
        rows += list(csv.DictReader(open(path)))
    last = [r for r in rows if r.get("val/accuracy")][-1]
    return {k: float(v) for k, v in last.items() if k.startswith("val/") and v}


@pytest.fixture(scope="module")
def reference(tiny_llama, tmp_path_factory):
    from bsr_lightning.synthetic_task import generate_preference_rows
    from conftest import write_jsonl

    root = tmp_path_factory.mktemp("uninterrupted")
    data = write_jsonl(root / "prefs.jsonl", generate_preference_rows(48, seed=7))
    result = fit(tiny_llama, data, root)
    assert result.returncode == 0, result.stderr[-3000:]
    return data, root


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_killed_run_resumes_with_same_order_and_metrics(reference, tiny_llama, tmp_path, signal_name):
    data, ref_root = reference
    killed = fit(tiny_llama, data, tmp_path, "--trainer.callbacks+=resume_helpers.KillAt",
                 "--trainer.callbacks.step", "4", "--trainer.callbacks.signal_name", signal_name)
    assert killed.returncode != 0
    if signal_name == "SIGTERM":  # the SIGTERM handler saved the step-4 state before exiting
        assert "SIGTERM received: saved" in killed.stdout
        assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["global_step"] == 4
    else:  # SIGKILL: the last periodic checkpoint (step 3) is intact
        assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["global_step"] == 3
    resumed = fit(tiny_llama, data, tmp_path, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got, expected = batches(tmp_path), batches(ref_root)
    assert sorted(got) == sorted(expected) == list(range(1, 19))  # 36 train pairs / 4 = 9 steps x 2 epochs
    assert [got[s]["row_ids"] for s in sorted(got)] == [expected[s]["row_ids"] for s in sorted(expected)]
    assert [got[s]["loss"] for s in sorted(got)] == pytest.approx([expected[s]["loss"] for s in sorted(expected)],
                                                                   rel=1e-5, abs=1e-6)
    assert final_val(tmp_path) == pytest.approx(final_val(ref_root), rel=1e-5, abs=1e-6)


def test_a_stop_during_the_last_validation_resumes_into_it(reference, tiny_llama, tmp_path):
    """Killed while validating after the last step (its checkpoint was saved just before), the resumed run runs
    that validation and ends with the uninterrupted run's metrics (it skipped it and ended with none)."""
    data, ref_root = reference
    killed = fit(tiny_llama, data, tmp_path, "--trainer.callbacks+=resume_helpers.KillInValidation",
                 "--trainer.callbacks.step", "18")
    assert killed.returncode != 0
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["global_step"] == 18
    resumed = fit(tiny_llama, data, tmp_path, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    newest = max(tmp_path.glob("lightning_logs/version_*/metrics.csv"), key=lambda p: p.parent.name)
    rows = [r for r in csv.DictReader(open(newest)) if r.get("val/accuracy")]
    assert [int(r["step"]) for r in rows] == [17]  # the step-18 validation (Lightning logs it at step - 1)
    assert final_val(tmp_path) == pytest.approx(final_val(ref_root), rel=1e-5, abs=1e-6)


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_killed_rloo_run_resumes_with_same_prompts_samples_and_losses(tmp_path):
    """RLOO adds sampling randomness: the resumed run must draw the same completions (restored RNG state)."""
    reference = fit_rloo(tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr[-3000:]
    killed = fit_rloo(tmp_path / "run", "--trainer.callbacks+=resume_helpers.KillAt", "--trainer.callbacks.step", "3",
                      "--trainer.callbacks.signal_name", "SIGKILL")
    assert killed.returncode != 0
    resumed = fit_rloo(tmp_path / "run", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got, expected = batches(tmp_path / "run"), batches(tmp_path / "ref")
    assert sorted(got) == sorted(expected) == list(range(1, 7))
    assert [got[s]["row_ids"] for s in got] == [expected[s]["row_ids"] for s in got]
    for key in ("loss", "train/entropy", "train/response_length", "train/kl"):  # sampled text decides these
        assert [got[s][key] for s in got] == pytest.approx([expected[s][key] for s in got], rel=1e-5, abs=1e-6), key
