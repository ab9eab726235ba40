"""A hostile checkpoint or model folder runs no code, and resuming never silently overrules the command line
(docs/reliability.md, round 2). Each test plants a module that writes a marker file when imported."""

import json
import shutil
import sys

import pytest
import torch

from bsr_lightning.cli import cli_main
from bsr_lightning.errors import ConfigError, PathNotFound
from bsr_lightning.training.checkpoints import load_module_from_checkpoint
from conftest import EVIL, write_jsonl
from test_cli import checkpoint_of, fit_args


@pytest.fixture
def trained(tiny_llama, synthetic_jsonl, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("trained")
    cli_main(fit_args(tiny_llama, synthetic_jsonl, root))
    return torch.load(checkpoint_of(root), weights_only=True)


def forged(trained: dict, path, **changes) -> str:
    hparams = {**trained["hyper_parameters"], **changes}
    torch.save({**trained, "hyper_parameters": hparams}, path)
    return str(path)


def test_class_paths_and_package_names_from_a_checkpoint_are_never_imported(trained, planted, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "good", "rejected": "bad"}])
    evil = {"class_path": "evilmod.Foo", "init_args": {}}
    cases = {"regularizer": {"regularizer": evil}, "zen": {"_class_path": "this.Foo"},
             "pkg": {"backbone": {**trained["hyper_parameters"]["backbone"], "name": "pkg:evilmod"}}}
    for name, change in cases.items():
        path = forged(trained, tmp_path / f"{name}.ckpt", **change)
        with pytest.raises((ConfigError, PathNotFound), match=r"outside bsr_lightning|no installed distribution"):
            cli_main(["export", "--ckpt_path", path, "--output_dir", str(tmp_path / f"out_{name}")])
        with pytest.raises((ConfigError, PathNotFound), match=r"outside bsr_lightning|no installed distribution"):
            cli_main(["evaluate", "--model", path, "--data", data, "--output_dir", str(tmp_path / "ev")])
    assert not planted.exists() and "evilmod" not in sys.modules and "this" not in sys.modules


def test_allow_modules_lets_a_users_own_module_through(trained, planted, tmp_path):
    path = forged(trained, tmp_path / "mine.ckpt", regularizer={"class_path": "evilmod.Foo", "init_args": {}})
    with pytest.raises(ValueError, match="evilmod.Foo"):  # named by the user: imported, then type-checked
        load_module_from_checkpoint(path, allow_modules=["evilmod"])
    assert planted.exists()


def test_remote_code_is_never_turned_on_by_a_checkpoint(trained, tiny_llama, planted, tmp_path):
    folder = tmp_path / "auto_map_model"
    shutil.copytree(tiny_llama, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil_config.EvilConfig",
                          "AutoModelForSequenceClassification": "evil_config.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil_config.py").write_text(EVIL.format(marker=str(planted)))
    backbone = {**trained["hyper_parameters"]["backbone"], "name": str(folder), "trust_remote_code": True}
    path = forged(trained, tmp_path / "remote.ckpt", backbone=backbone)
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "good", "rejected": "bad"}])
    with pytest.raises(ConfigError, match=r"auto_map.*runs only when you ask for it in this run"):
        cli_main(["export", "--ckpt_path", path, "--output_dir", str(tmp_path / "out")])
    with pytest.raises(ConfigError, match="auto_map"):
        cli_main(["evaluate", "--model", path, "--data", data, "--output_dir", str(tmp_path / "ev")])
    with pytest.raises(ConfigError, match="auto_map"):  # a plain folder too, unless this run turns it on
        cli_main(["evaluate", "--model", str(folder), "--data", data, "--output_dir", str(tmp_path / "ev")])
    assert not planted.exists()


def test_fit_resumes_from_this_runs_config_not_the_checkpoints(tiny_llama, synthetic_jsonl, planted, tmp_path,
                                                                trained):
    periodic = ["--trainer.callbacks+=bsr_lightning.training.checkpointing.PeriodicCheckpoint",
                "--trainer.callbacks.every_n_train_steps", "1"]
    cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path / "run", *periodic))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    evil = forged(torch.load(last, weights_only=True), tmp_path / "evil.ckpt",
                  regularizer={"class_path": "evilmod.Foo", "init_args": {}})
    with pytest.raises(ConfigError, match=r"differ from the checkpoint's in regularizer.class_path"):
        cli_main([*fit_args(tiny_llama, synthetic_jsonl, tmp_path / "r2", *periodic), "--ckpt_path", evil])
    assert not planted.exists()
    with pytest.raises(ConfigError, match=r"optimization.lr: 0.001 -> 0.05.*regularizer.class_path"):
        cli_main([*fit_args(tiny_llama, synthetic_jsonl, tmp_path / "run", *periodic, "--model.optimization.lr",
                            "0.05", "--model.regularizer", "bsr_lightning.reward.regularizers.BatchSumToZero",
                            "--model.regularizer.init_args.weight", "0.5"), "--ckpt_path", "last"])
    resumed = cli_main([*fit_args(tiny_llama, synthetic_jsonl, tmp_path / "run", *periodic),
                        "--trainer.max_steps", "4", "--ckpt_path", "last"])  # the same model: resumes
    assert resumed.trainer.global_step == 4


def test_data_paths_are_literal(tmp_path):
    from bsr_lightning.data.loading import local_files

    write_jsonl(tmp_path / "d1.jsonl", [{}])
    with pytest.raises(PathNotFound):  # never globbed to d1.jsonl
        local_files(str(tmp_path / "d[1].jsonl"))
    bracketed = write_jsonl(tmp_path / "d[1].jsonl", [{}])
    assert local_files(bracketed) == [bracketed]
    assert local_files(str(tmp_path / "d*.jsonl")) == sorted([str(tmp_path / "d1.jsonl"), bracketed])
