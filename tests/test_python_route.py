"""The Python route (issue 36, finding 8): ``RewardModel``, a DataModule over an in-memory ``datasets.Dataset`` with
its own column names, and ``lightning.Trainer``, as the manual's example writes it."""

import re

import torch

from conftest import REPO


def example_code() -> str:
    text = (REPO / "docs/guide/train.md").read_text()
    return re.search(r"## From Python\n.*?```python\n(.*?)```", text, re.S).group(1)


def test_the_manuals_python_example_trains_on_an_in_memory_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = example_code()
    assert len(code.strip().splitlines()) <= 16
    scope: dict = {}
    exec(compile(code, "train.md", "exec"), scope)  # noqa: S102 (the manual's own example)
    trainer, data = scope["trainer"], scope["data"]
    assert trainer.global_step == 4 and torch.isfinite(trainer.callback_metrics["train/loss"])
    assert "val/accuracy" in trainer.callback_metrics
    assert data.counts["train"]["rows"] == 64
    assert "rows" not in data.hparams and data.hparams.columns["question"] == "prompt"
