"""One gate for writes (docs/reliability.md, round 3): no write follows a link out of the folder, a manifest vouches
only for what the package wrote (by bytes and by inode, folders by digest), an upload sends exactly the export's
manifest, a parallel run cannot silently replace an export, and a checkpoint never makes the program read a path."""

import json
import os

import pytest
import torch

from bsr_lightning.args import Backbone
from bsr_lightning.backbones.export import export_module
from bsr_lightning.backbones.model_card import model_card
from bsr_lightning.cli import cli_main
from bsr_lightning.errors import ConfigError, RowError, UserError
from bsr_lightning.files import MANIFEST, OUTPUTS, claim_output_dir, owned_files, record_outputs, sha256_of
from bsr_lightning.reward.module import RewardModel
from conftest import write_jsonl
from hub_server import FakeHub
from test_cli import checkpoint_of, fit_args
from test_hub import run_export

EMPTY_SHA = sha256_of(os.devnull)


def test_a_forged_outputs_manifest_vouches_for_no_users_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("my report")
    (out / "train.jsonl").write_text("{}\n")
    for forged in ({"files": {}, "dirs": ["report.md", "train.jsonl"]},  # round 2's list of names, no digest
                   {"files": {}, "dirs": {"report.md": "x", "train.jsonl": "y"}},  # files listed as folders
                   {"files": {"report.md": sha256_of(out / "report.md")}, "dirs": {}}):  # a hash, not the inode
        (out / OUTPUTS).write_text(json.dumps(forged))
        with pytest.raises(UserError, match="did not write"):
            claim_output_dir(out, ["report.md", "metrics.json"], command="evaluate")
    # what the package itself records is recognised (and a later edit by the user is not)
    record_outputs(out, [], dirs=[])
    (out / "runs").mkdir()
    (out / "mine.json").write_text("{}")
    os.remove(out / "report.md"), os.remove(out / "train.jsonl")
    record_outputs(out, ["mine.json"], dirs=["runs"])
    claim_output_dir(out, ["mine.json"], command="sweep")
    (out / "runs" / "user.txt").write_text("added by hand")
    with pytest.raises(UserError, match="'runs'"):
        claim_output_dir(out, ["mine.json"], command="sweep")


def test_a_forged_export_manifest_with_the_empty_files_hash_deletes_nothing(tiny_llama, tmp_path):
    module = RewardModel(Backbone(tiny_llama))
    target = tmp_path / "model"
    target.mkdir()
    (target / ".gitkeep").write_text("")
    (target / "__init__.py").write_text("")
    (target / MANIFEST).write_text(json.dumps({"files": {".gitkeep": EMPTY_SHA, "__init__.py": EMPTY_SHA}}))
    with pytest.raises(UserError, match="not empty"):
        export_module(module, target)
    export_module(module, target, overwrite=True)
    assert (target / ".gitkeep").is_file() and (target / "__init__.py").is_file()


def test_evaluate_never_writes_through_a_link(tiny_llama, synthetic_jsonl, tmp_path):
    cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path / "run"))
    ckpt = str(checkpoint_of(tmp_path / "run"))
    out = tmp_path / "ev"
    out.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    hard = tmp_path / "hard.txt"
    hard.write_text("keep me too")
    os.symlink(outside, out / ".scores.jsonl.partial")
    os.symlink(outside, out / "scores.jsonl")
    os.link(hard, out / "metrics.json")
    cli_main(["evaluate", "--model", ckpt, "--data", synthetic_jsonl, "--output_dir", str(out), "--overwrite",
              "true"])
    assert outside.read_text() == "keep me" and hard.read_text() == "keep me too"
    assert not (out / "scores.jsonl").is_symlink() and (out / "scores.jsonl").stat().st_size > 0
    assert json.loads((out / "metrics.json").read_text())["rows"] > 0


def test_diagnose_never_writes_through_a_link(tiny_llama, synthetic_jsonl, tmp_path):
    from bsr_lightning.evaluation.diagnostics import diagnose

    cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path / "run"))
    out = tmp_path / "diag"
    out.mkdir()
    outside = tmp_path / "outside.json"
    outside.write_text("keep me")
    os.symlink(outside, out / "diagnostics.json")
    diagnose([str(checkpoint_of(tmp_path / "run"))], synthetic_jsonl, str(out), max_pairs=8, overwrite=True)
    assert outside.read_text() == "keep me" and "accuracy" in (out / "diagnostics.json").read_text()


def test_an_upload_sends_exactly_the_exports_manifest(tiny_bert, synthetic_jsonl, tmp_path):
    cli_main(fit_args(tiny_bert, synthetic_jsonl, tmp_path))
    out = tmp_path / "export"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("private notes")
    (out / "sub" / "train.jsonl").write_text("{}\n")
    with FakeHub() as hub:
        done = run_export(str(checkpoint_of(tmp_path)), str(out), hub.url, "--push_to_hub", "me/rm", "--overwrite",
                          "true")
        assert done.returncode == 0, done.stderr[-2000:]
        sent = set(hub.repos["me/rm"]["files"])
    assert sent == set(owned_files(out, MANIFEST)) and "config.json" in sent
    assert "notes.txt" not in sent and "sub/train.jsonl" not in sent


def test_a_run_that_exported_in_parallel_is_never_silently_replaced(tiny_llama, tmp_path):
    module = RewardModel(Backbone(tiny_llama))
    target = tmp_path / "reward_model"
    export_module(module, target, run_id="first", expect_run_id="")  # the parallel run finished first
    with pytest.raises(UserError, match="another run wrote an export there while this one trained"):
        export_module(module, target, run_id="second", expect_run_id="")  # saw no export when it started
    assert json.loads((target / MANIFEST).read_text())["run_id"] == "first"
    export_module(module, target, run_id="first", expect_run_id="first")  # the same run writes again


def test_extending_a_finished_run_is_the_same_run(tiny_llama, synthetic_jsonl, tmp_path):
    periodic = ["--trainer.callbacks+=bsr_lightning.training.checkpointing.PeriodicCheckpoint",
                "--trainer.callbacks.every_n_train_steps", "1",
                "--trainer.callbacks+=bsr_lightning.training.callbacks.ExportOnFitEnd"]
    cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path, *periodic))
    first = json.loads((tmp_path / "reward_model" / MANIFEST).read_text())["run_id"]
    cli = cli_main([*fit_args(tiny_llama, synthetic_jsonl, tmp_path, *periodic), "--trainer.max_steps", "5",
                    "--ckpt_path", "last"])
    assert cli.trainer.global_step == 5
    assert json.loads((tmp_path / "reward_model" / MANIFEST).read_text())["run_id"] == first


def test_a_resume_writes_last_ckpt_not_last_v1(tiny_llama, synthetic_jsonl, tmp_path):
    """A checkpoint saved before the first periodic save (SIGTERM's) records no ``last_model_path``; Lightning's
    version counter then wrote ``last-v1.ckpt`` beside it, and ``--ckpt_path .../last.ckpt`` found the older one."""
    periodic = ["--trainer.callbacks+=bsr_lightning.training.checkpointing.PeriodicCheckpoint",
                "--trainer.callbacks.every_n_train_steps", "1"]
    cli_main([*fit_args(tiny_llama, synthetic_jsonl, tmp_path, *periodic), "--trainer.max_steps", "2"])
    last = tmp_path / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=False)
    for key, value in state["callbacks"].items():
        if "PeriodicCheckpoint" in key:
            value["last_model_path"] = ""  # as a SIGTERM save before the first periodic one records it
    torch.save(state, last)
    cli = cli_main([*fit_args(tiny_llama, synthetic_jsonl, tmp_path, *periodic), "--trainer.max_steps", "4",
                    "--ckpt_path", "last"])
    assert cli.trainer.global_step == 4
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt"]
    assert torch.load(last, weights_only=False)["global_step"] == 4


def test_a_resume_with_changed_data_settings_is_refused(tiny_llama, synthetic_jsonl, tmp_path):
    periodic = ["--trainer.callbacks+=bsr_lightning.training.checkpointing.PeriodicCheckpoint",
                "--trainer.callbacks.every_n_train_steps", "1"]
    cli_main([*fit_args(tiny_llama, synthetic_jsonl, tmp_path, *periodic), "--trainer.max_steps", "2"])
    with pytest.raises(ConfigError, match=r"data.batch_size: 4 -> 8"):
        cli_main([*fit_args(tiny_llama, synthetic_jsonl, tmp_path, *periodic), "--data.batch_size", "8",
                  "--trainer.max_steps", "4", "--ckpt_path", "last"])
    cli = cli_main([*fit_args(tiny_llama, synthetic_jsonl, tmp_path, *periodic), "--data.num_workers", "0",
                    "--trainer.max_steps", "4", "--ckpt_path", "last"])  # a setting that changes no batch
    assert cli.trainer.global_step == 4


def test_a_checkpoints_chat_template_path_is_never_read(tiny_llama, synthetic_jsonl, tmp_path):
    cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path / "run"))
    trained = torch.load(checkpoint_of(tmp_path / "run"), weights_only=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("{{ 'the secret' }}")
    backbone = {**trained["hyper_parameters"]["backbone"], "chat_template": str(secret)}
    torch.save({**trained, "hyper_parameters": {**trained["hyper_parameters"], "backbone": backbone}},
               tmp_path / "t.ckpt")
    with pytest.raises(ConfigError, match="never read"):
        cli_main(["export", "--ckpt_path", str(tmp_path / "t.ckpt"), "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_the_model_card_quotes_a_checkpoints_text_inertly():
    facts = {"title": "t", "summary": "s", "tags": [], "usage": "x", "base_model": "a`b|c",
             "table": {"k": "v"}, "run_record": {"command": "fit\n```\n<script>alert(1)</script>",
                                                 "data": ["d`</code><img src=x>"]}}
    card = model_card(facts, {"val/<b>": 1.0})
    fence = next(line for line in card.split("## How it was trained")[1].splitlines() if line.startswith("`"))
    assert fence == "````bash"  # longer than the ``` inside, so the command cannot close it early
    assert "``a`b\\|c``" in card and "&lt;b&gt;" in card and "<script>" not in card.split("````bash")[0]


def test_tiny_names_make_no_folder_outside_the_cache(tmp_path, monkeypatch):
    from bsr_lightning.backbones.tiny import tiny_model_path

    monkeypatch.setenv("BSR_LIGHTNING_CACHE", str(tmp_path / "cache"))
    for name in ("/../../x/planted", "foo"):
        with pytest.raises(ConfigError, match="no such tiny model"):
            tiny_model_path(name)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "x").exists()


def test_scoring_refuses_a_model_without_a_trained_score_head(tiny_llama, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    headless = tmp_path / "headless"
    shutil.copytree(tiny_llama, headless)
    weights = load_file(headless / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("score.")}, headless / "model.safetensors",
              metadata={"format": "pt"})
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "good", "rejected": "bad"}])
    with pytest.raises(UserError, match="no trained score head"):
        cli_main(["evaluate", "--model", str(headless), "--data", data, "--output_dir", str(tmp_path / "ev")])
    cli_main(["evaluate", "--model", tiny_llama, "--data", data, "--output_dir", str(tmp_path / "ok")])


def test_data_lists_are_literal_and_complete(tmp_path):
    from bsr_lightning.data.loading import iter_raw_rows, local_files
    from bsr_lightning.errors import PathNotFound

    comma = write_jsonl(tmp_path / "pairs,v2.jsonl", [{}])
    write_jsonl(tmp_path / "v2.jsonl", [{}])
    assert local_files(comma) == [comma]
    with pytest.raises(PathNotFound, match="missing.jsonl"):
        local_files(f"{tmp_path / 'v2.jsonl'},{tmp_path / 'missing.jsonl'}")
    (tmp_path / "t.csv").write_text("prompt,chosen,rejected\nhi,a,b\nhi,a,b,c\n")
    rows = [row for _, row in iter_raw_rows(str(tmp_path / "t.csv"))]
    assert rows[0] == {"prompt": "hi", "chosen": "a", "rejected": "b"}
    assert isinstance(rows[1], RowError) and "4 fields where the header has 3" in str(rows[1])


def test_runs_with_nothing_to_train_or_score_are_errors(tiny_llama, tmp_path):
    from bsr_lightning.data.synthetic import SyntheticPreferenceDataModule
    from bsr_lightning.errors import DataError
    from bsr_lightning.evaluation.evaluators import EVALUATORS

    for count in (0, -5):
        with pytest.raises(ConfigError, match="num_pairs"):
            SyntheticPreferenceDataModule(num_pairs=count)
    model = tmp_path / "m"
    export_module(RewardModel(Backbone(tiny_llama)), model)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p"}, {"chosen": "x"}])
    with pytest.raises(DataError, match="all 2 rows are bad"):
        cli_main(["evaluate", "--model", str(model), "--data", bad, "--output_dir", str(tmp_path / "ev"),
                  "--bad_rows", "skip"])
    gap = {"prompt": "p", "response_1_text": "a", "response_3_text": "b", "response_4_text": "c",
           "all_scores": [1.0]}
    with pytest.raises(RowError, match="without a gap"):
        EVALUATORS["multi"]("x").parse(gap, 0, "f:1")

