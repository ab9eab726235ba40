"""``--trainer.logger wandb|mlflow|tensorboard|csv``: W&B offline and an MLflow file store each record the
training and validation metrics; missing optional packages stop with the pip command."""

import os
import subprocess
import sys

import pytest

from bsr_lightning.errors import MissingExtra, require
from bsr_lightning.training.loggers import SHORTCUTS, expand_shortcuts
from conftest import REPO, run_main
from wandb_offline import history_keys

TINY_CONFIG = str(REPO / "configs/reward/synthetic_tiny.yaml")


def test_shortcuts_expand_to_lightning_loggers_and_keep_everything_else():
    assert expand_shortcuts(["fit", "--trainer.logger", "wandb", "--trainer.logger.project", "p"]) == [
        "fit", f"--trainer.logger={SHORTCUTS['wandb']}", "--trainer.logger.project", "p"]
    assert expand_shortcuts(["--trainer.logger=csv"]) == [f"--trainer.logger={SHORTCUTS['csv']}",
                                                           "--trainer.logger.save_dir=."]
    assert expand_shortcuts(["--trainer.logger", "false", "--data.path", "wandb"]) == [
        "--trainer.logger", "false", "--data.path", "wandb"]


def fit(tmp_path, logger: str, **env: str) -> subprocess.CompletedProcess:
    """A short fit of the tiny synthetic reward model in a fresh process (so the logger's run is closed at exit),
    validating every 10 steps."""
    args = [sys.executable, "-m", "bsr_lightning", "fit", "--config", TINY_CONFIG,
            "--trainer.max_steps", "20", "--trainer.val_check_interval", "10", "--trainer.limit_val_batches", "2",
            "--trainer.callbacks", "[]", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.logger", logger]
    done = subprocess.run(args, cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_wandb_offline_records_train_and_val_metrics(tmp_path):
    fit(tmp_path, "wandb", WANDB_MODE="offline", WANDB_SILENT="true")
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1  # under trainer.default_root_dir, nothing in the working directory
    keys = history_keys(runs[0])
    assert {"train/loss", "val/accuracy"} <= keys


def test_mlflow_writes_a_local_file_store_by_default(tmp_path):
    fit(tmp_path, "mlflow")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient((tmp_path / "run" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("bsr_lightning")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "synthetic_tiny"  # the config file's name
    assert {"train/loss", "val/accuracy"} <= set(run.data.metrics)
    assert len(client.get_metric_history(run.info.run_id, "val/accuracy")) == 2  # steps 10 and 20


def test_a_missing_extra_names_the_pip_command(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtra, match=r"diagnose needs the optional package 'matplotlib'.*"
                                           r"pip install 'bsr_lightning\[plots\]'"):
        require("matplotlib", "diagnose")


def test_commands_stop_with_the_pip_command_when_an_extra_is_missing(tmp_path, monkeypatch, capsys):
    import importlib.util

    find = importlib.util.find_spec  # as if neither package were installed
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("matplotlib", "bitsandbytes") else find(name, *a))
    code, _, err = run_main(["diagnose", "--models", "[m]", "--data", "d.jsonl", "--output_dir", str(tmp_path)],
                            monkeypatch, capsys)
    assert code == 2 and "pip install 'bsr_lightning[plots]'" in err, err[-2000:]
    code, _, err = run_main(["fit", "--config", TINY_CONFIG, "--model.backbone.quantization", "nf4",
                             "--model.backbone.lora", "{}", "--trainer.callbacks", "[]",
                             "--trainer.default_root_dir", str(tmp_path)], monkeypatch, capsys)
    assert code == 2 and "pip install 'bsr_lightning[quant]'" in err, err[-2000:]
