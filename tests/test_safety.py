"""Safe and lossless by default (docs/reliability.md lists each case): file modes, exports that never delete a user's
files, empty runs stopped before training, resume that finds its checkpoint or says so, atomic evaluate outputs,
CUDA RNG in the resume state."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.backbones.export import export_module
from bsr_lightning.cli import cli_main
from bsr_lightning.errors import DataError, PathNotFound, RowError, UserError
from bsr_lightning.files import MANIFEST, file_identity, sha256_of
from bsr_lightning.synthetic_task import generate_preference_rows
from bsr_lightning.training.checkpointing import AtomicCheckpointIO, ResumeState
from conftest import REPO, run_main, write_jsonl


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def fit_args(model: str, data: str, root: Path, *extra: str) -> list[str]:
    return ["fit", "--model", "bsr_lightning.RewardModel", "--model.backbone.name", model, "--data",
            "bsr_lightning.PreferenceDataModule", "--data.path", data, "--data.batch_size", "4",
            "--data.val_fraction", "0.25", "--data.max_length", "128", "--trainer.max_steps", "2",
            "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(root),
            "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", *extra]


def test_checkpoints_and_exports_follow_the_umask(tiny_llama, tmp_path, umask_022):
    AtomicCheckpointIO().save_checkpoint({"x": torch.zeros(2)}, tmp_path / "a.ckpt")
    assert mode(tmp_path / "a.ckpt") == 0o644  # mkstemp alone gives 0600
    out = export_module(RewardModel(Backbone(tiny_llama)), tmp_path / "export")
    assert mode(out) == 0o755  # mkdtemp alone gives 0700
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"model.safetensors", "config.json", MANIFEST} <= {p.name for p in files}
    assert {p.name: mode(p) for p in files} == {p.name: 0o644 for p in files}  # safetensors alone gives 0600


def test_export_never_deletes_files_it_did_not_write(tiny_llama, tmp_path):
    module = RewardModel(Backbone(tiny_llama))
    target = tmp_path / "mine"
    (target / "sub").mkdir(parents=True)
    (target / "notes.txt").write_text("my notes")
    (target / "sub" / "train.jsonl").write_text("{}\n")
    with pytest.raises(UserError, match=r"mine is not empty: 2 file\(s\) there no export wrote .*--overwrite"):
        export_module(module, target)
    with pytest.raises(UserError, match="not empty"):
        cli_main(["export", "--ckpt_path", str(tmp_path / "any.ckpt"), "--output_dir", str(target)])
    export_module(module, target, overwrite=True)
    assert (target / "notes.txt").read_text() == "my notes" and (target / "sub" / "train.jsonl").is_file()
    assert (target / "config.json").is_file() and (target / MANIFEST).is_file()
    # re-export into an earlier export: its own leftovers go, the user's files stay
    manifest = json.loads((target / MANIFEST).read_text())
    (target / "stale.bin").write_text("written by an older export")
    (target / MANIFEST).write_text(json.dumps({"files": {**manifest["files"], "stale.bin": file_identity(
        target / "stale.bin")}}))  # as an older export records the very file it wrote
    with pytest.raises(UserError, match="not empty"):  # the user's files are still there: --overwrite again
        export_module(module, target)
    export_module(module, target, overwrite=True)
    assert not (target / "stale.bin").exists() and (target / "notes.txt").is_file()
    export_module(module, target / "inner")
    export_module(module, target / "inner")  # an export of its own, unchanged: replaced without --overwrite


def test_a_forged_manifest_deletes_nothing_of_the_users(tiny_llama, tmp_path):
    """A model folder from elsewhere whose manifest lists a file outside it, an absolute path and a user's file
    (with a hash that is not the file's): export neither deletes nor writes over any of them."""
    module = RewardModel(Backbone(tiny_llama))
    victim = tmp_path / "victimdir" / "precious.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    absolute = tmp_path / "absolute.txt"
    absolute.write_text("absolute")
    target = tmp_path / "downloaded_model"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    forged = {"../victimdir/precious.txt": sha256_of(victim), str(absolute): sha256_of(absolute),
              "notes.txt": "0" * 64}
    (target / MANIFEST).write_text(json.dumps({"files": forged}))
    with pytest.raises(UserError, match="not empty"):  # the manifest vouches for nothing there
        export_module(module, target)
    export_module(module, target, overwrite=True)
    assert victim.read_text() == "precious" and absolute.read_text() == "absolute"
    assert (target / "notes.txt").read_text() == "mine" and (target / "config.json").is_file()
    (target / MANIFEST).write_text(json.dumps({"files": ["../victimdir/precious.txt", str(absolute), "notes.txt"]}))
    export_module(module, target, overwrite=True)  # an old-style manifest without hashes vouches for nothing either
    assert victim.is_file() and absolute.is_file() and (target / "notes.txt").read_text() == "mine"


def test_export_callback_refuses_a_foreign_directory_before_training(tiny_llama, synthetic_jsonl, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path / "run",
                          "--trainer.callbacks+=bsr_lightning.training.callbacks.ExportOnFitEnd",
                          "--trainer.callbacks.output_dir", str(target)))
    assert not list((tmp_path / "run").rglob("*.ckpt")) and os.listdir(target) == ["notes.txt"]


def test_a_run_with_nothing_to_train_on_stops_before_training_with_counts(tiny_llama, synthetic_jsonl, tmp_path):
    with pytest.raises(DataError, match=r"train data: nothing left after filtering: 48 rows read, 0 bad, 12 held out "
                                        r"for validation, 36 dropped as longer than max_length=4"):
        cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path, "--data.max_length", "4", "--data.overlong", "drop",
                          "--trainer.callbacks+=bsr_lightning.training.callbacks.ExportOnFitEnd",
                          "--trainer.callbacks.output_dir", str(tmp_path / "export")))
    assert not (tmp_path / "export").exists()


def test_ckpt_path_last_needs_a_checkpoint_and_resumes_from_the_periodic_one(tiny_llama, synthetic_jsonl, tmp_path):
    periodic = ["--trainer.callbacks+=bsr_lightning.training.checkpointing.PeriodicCheckpoint",
                "--trainer.callbacks.every_n_train_steps", "1"]
    with pytest.raises(PathNotFound, match=r"--ckpt_path last: no last checkpoint in .*checkpoints.*last_if_present"):
        cli_main([*fit_args(tiny_llama, synthetic_jsonl, tmp_path, *periodic), "--ckpt_path", "last"])
    first = cli_main([*fit_args(tiny_llama, synthetic_jsonl, tmp_path, *periodic), "--ckpt_path", "last_if_present"])
    assert first.trainer.global_step == 2 and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    resumed = cli_main([*fit_args(tiny_llama, synthetic_jsonl, tmp_path, *periodic), "--trainer.max_steps", "3",
                        "--ckpt_path", "last"])
    assert resumed.trainer.global_step == 3  # continued from step 2, one more step


def test_an_unwritable_output_directory_is_found_before_training(tiny_llama, synthetic_jsonl, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(UserError, match=r"trainer.default_root_dir .*a_file/run is not writable"):
        cli_main(fit_args(tiny_llama, synthetic_jsonl, blocker / "run"))


def test_every_shipped_training_config_checkpoints_periodically():
    import yaml

    for path in sorted((REPO / "configs").rglob("*.yaml")):
        trainer = yaml.safe_load(path.read_text())["trainer"]
        paths = [c["class_path"] for c in trainer.get("callbacks", [])]
        assert "bsr_lightning.training.checkpointing.PeriodicCheckpoint" in paths, path
        assert trainer.get("enable_checkpointing", True), path


def test_a_failed_evaluate_leaves_the_previous_outputs_intact(tiny_llama, tmp_path):
    model = str(export_module(RewardModel(Backbone(tiny_llama)), tmp_path / "rm"))
    good = write_jsonl(tmp_path / "good.jsonl", generate_preference_rows(6, seed=1))
    out = tmp_path / "eval"
    cli_main(["evaluate", "--model", model, "--data", good, "--output_dir", str(out)])
    before = {name: (out / name).read_text() for name in ("scores.jsonl", "metrics.json", "report.md")}
    bad = write_jsonl(tmp_path / "bad.jsonl", [*generate_preference_rows(4, seed=2), "{not json"])
    with pytest.raises(RowError, match=r"bad.jsonl:5: malformed JSON"):
        cli_main(["evaluate", "--model", model, "--data", bad, "--output_dir", str(out), "--chunk_rows", "2"])
    assert {name: (out / name).read_text() for name in before} == before
    assert sorted(os.listdir(out)) == [".bsr_lightning_outputs.json", "metrics.json", "report.md", "scores.jsonl"]


def test_evaluate_with_the_wrong_format_names_the_expected_columns(tiny_llama, tmp_path):
    model = str(export_module(RewardModel(Backbone(tiny_llama)), tmp_path / "rm"))
    pairs = write_jsonl(tmp_path / "pairs.jsonl", generate_preference_rows(2, seed=1))
    expected = (r"pairs.jsonl:1: --format multi expects columns \['prompt', 'responses', 'scores'\], this row has "
                r"\[.*'chosen'.*\] \(missing \['responses', 'scores'\]\)")
    with pytest.raises(RowError, match=expected):
        cli_main(["evaluate", "--model", model, "--data", pairs, "--format", "multi", "--output_dir",
                  str(tmp_path / "e")])


def test_export_accepts_weights_only_false(tmp_path):
    with pytest.raises(PathNotFound, match="nope.ckpt not found"):  # parsed, then the missing file is named
        cli_main(["export", "--ckpt_path", str(tmp_path / "nope.ckpt"), "--output_dir", str(tmp_path / "o"),
                  "--weights_only", "false"])


def test_a_missing_model_path_says_which_path_and_that_the_hub_is_offline(tmp_path):
    with pytest.raises(PathNotFound, match=r"model 'artifacts/none/reward_model' not found: no such directory"):
        RewardModel(Backbone("artifacts/none/reward_model"))
    with pytest.raises(PathNotFound, match=r"model 'my_rm': no such local directory .* the hub is offline"):
        RewardModel(Backbone("my_rm"))


def run_module(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bsr_lightning", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_user_errors_print_one_block_and_exit_2(tmp_path, monkeypatch, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"chosen": "a"}])
    args = ["fit", "--config", str(REPO / "configs/reward/synthetic_tiny.yaml"), "--data",
            "bsr_lightning.PreferenceDataModule", "--data.path", bad, "--trainer.default_root_dir", str(tmp_path)]
    result = run_module(*args)  # the real entry point once; the other two through the same main() in this process
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error, hint = result.stderr.strip().splitlines()[-2:]  # the block: what and where, what to do; then the hint
    assert error.startswith("bsr_lightning: error: ") and "bad.jsonl:1: missing column 'rejected'" in error
    assert "bad_rows skip" in error and "BSR_LIGHTNING_TRACEBACK=1" in hint
    code, _, err = run_main(["fit", "--config", str(REPO / "configs/reward/synthetic_tiny.yaml"),
                             "--model.regularizer.init_args.weight", "-1", "--trainer.default_root_dir",
                             str(tmp_path)], monkeypatch, capsys)
    assert code == 2 and "model.regularizer.init_args.weight: must be 0 or more" in err and "Traceback" not in err
    monkeypatch.setenv("BSR_LIGHTNING_TRACEBACK", "1")
    code, _, _ = run_main(args, monkeypatch, capsys)
    assert code.startswith("traceback ") and "missing column 'rejected'" in code  # raised: Python prints it


def test_resume_state_saves_and_restores_cuda_generators(monkeypatch):
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.tensor([1, 2], dtype=torch.uint8)])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    callback = ResumeState()
    state = callback.state_dict()
    assert state["cuda"][0].tolist() == [1, 2]
    callback.load_state_dict(state)
    callback.on_train_batch_start(None, None, None, 0)
    assert restored and restored[0][0].tolist() == [1, 2]


def test_evaluate_skips_and_counts_bad_rows_when_asked(tiny_llama, tmp_path):
    model = str(export_module(RewardModel(Backbone(tiny_llama)), tmp_path / "rm"))
    data = write_jsonl(tmp_path / "mixed.jsonl", [*generate_preference_rows(3, seed=1), {"chosen": "only"},
                                                  *generate_preference_rows(2, seed=2)])
    with pytest.raises(RowError, match=r"mixed.jsonl:4: --format pairs expects .* \(missing \['rejected'\]\)"):
        cli_main(["evaluate", "--model", model, "--data", data, "--output_dir", str(tmp_path / "e1")])
    metrics = cli_main(["evaluate", "--model", model, "--data", data, "--output_dir", str(tmp_path / "e2"),
                        "--bad_rows", "skip"])
    assert metrics["pairs"] == 5 and metrics["bad_rows"]["skipped"] == 1
    assert "mixed.jsonl:4" in metrics["bad_rows"]["first"][0]
    assert len((tmp_path / "e2" / "scores.jsonl").read_text().splitlines()) == 5
