"""The command line over a table of bad inputs: each one stops with one ``bsr_lightning: error:`` block and exit
status 2, never a traceback (docs/reliability.md lists them)."""

import json
import sys

import pytest
import torch

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.backbones.export import export_module
from bsr_lightning.cli import cli_main, main
from bsr_lightning.files import MANIFEST
from conftest import run_main, write_jsonl
from test_cli import checkpoint_of, fit_args

ROW = {"prompt": "How do I start chess?", "chosen": "Learn the moves.", "rejected": "no"}


@pytest.fixture(scope="module")
def made(tiny_llama, tmp_path_factory) -> dict:
    """A fitted checkpoint, an export and data files, shared by the rows of the table."""
    root = tmp_path_factory.mktemp("made")
    data = write_jsonl(root / "pairs.jsonl", [ROW] * 8)
    cli_main(fit_args(tiny_llama, data, root / "run", "--data.val_fraction", "0"))
    ckpt = checkpoint_of(root / "run")
    checkpoint = torch.load(ckpt, weights_only=True)
    (root / "garbage.ckpt").write_bytes(b"not a checkpoint at all")
    (root / "empty.ckpt").write_bytes(b"")
    (root / "truncated.ckpt").write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    torch.save({"hyper_parameters": checkpoint["hyper_parameters"]}, root / "no_state.ckpt")
    shapes = {k: torch.zeros(3) if k.endswith("score.weight") else v for k, v in checkpoint["state_dict"].items()}
    torch.save({**checkpoint, "state_dict": shapes}, root / "shapes.ckpt")
    export = export_module(RewardModel(Backbone(tiny_llama)), root / "export")
    (root / "empty.jsonl").write_text("")
    (root / "nested.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    write_jsonl(root / "surrogate.jsonl", ['{"prompt": "p", "chosen": "\\ud800", "rejected": "no"}'])
    (root / "wide.csv").write_text("prompt,chosen,rejected\np," + "x" * 140_000 + ",no\n")
    (root / "empty_dir").mkdir()
    manifest_dir = root / "manifest_is_a_dir"
    (manifest_dir / MANIFEST).mkdir(parents=True)
    return {"root": root, "ckpt": str(ckpt), "export": str(export), "data": data, "manifest_dir": str(manifest_dir)}


def cases(m: dict) -> dict[str, tuple[list[str], str]]:
    r = m["root"]
    out = str(r / "out")

    def ev(data: str, *extra: str) -> list[str]:
        return ["evaluate", "--model", m["export"], "--data", data, "--output_dir", out, *extra]

    return {
        "garbage checkpoint": (["export", "--ckpt_path", str(r / "garbage.ckpt"), "--output_dir", out],
                               "cannot be read"),
        "empty checkpoint": (["export", "--ckpt_path", str(r / "empty.ckpt"), "--output_dir", out], "cannot be read"),
        "truncated checkpoint": (["export", "--ckpt_path", str(r / "truncated.ckpt"), "--output_dir", out],
                                 "cannot be read"),
        "no state_dict": (["export", "--ckpt_path", str(r / "no_state.ckpt"), "--output_dir", out], "no state_dict"),
        "wrong shapes": (["export", "--ckpt_path", str(r / "shapes.ckpt"), "--output_dir", out], "do not fit"),
        "an export as checkpoint": (["export", "--ckpt_path", m["export"], "--output_dir", out], "is a folder"),
        "manifest is a folder": (["export", "--ckpt_path", m["ckpt"], "--output_dir", m["manifest_dir"]],
                                 "is not a file"),
        "empty data": (ev(str(r / "empty.jsonl")), "no rows"),
        "nested JSON": (ev(str(r / "nested.jsonl")), "nested too deep"),
        "lone surrogate": (ev(str(r / "surrogate.jsonl")), "surrogate"),
        "hub dataset offline": (ev("allenai/reward-bench", "--format", "rewardbench"), "hub is offline"),
        "mistyped suffix": (ev(str(r / "pairs.jsnol")), "not found"),
        "empty directory": (ev(str(r / "empty_dir")), "empty_dir"),
        "chunk_rows 0": (ev(m["data"], "--chunk_rows", "0"), "chunk_rows: must be at least 1"),
        "batch_size -1": (ev(m["data"], "--batch_size", "-1"), "batch_size: must be at least 1"),
        "serve batch_size -1": (["serve", "--model", m["export"], "--batch_size", "-1"],
                                "batch_size: must be at least 1"),
        "serve timeout -1": (["serve", "--model", m["export"], "--timeout", "-1"], "timeout: must be positive"),
        "serve a missing model": (["serve", "--model", str(r / "no_such_model")], "not found"),
        "max_pairs 0": (fit_args(m["export"], m["data"], r / "fit0", "--data.max_pairs", "0"),
                        "data.max_pairs: must be at least 1"),
        "resume a garbage checkpoint": ([*fit_args(m["export"], m["data"], r / "fit1"), "--ckpt_path",
                                         str(r / "garbage.ckpt")], "cannot be read"),
    }


def test_every_bad_input_is_one_message_and_exit_2(made, monkeypatch, capsys):
    failures = []
    for name, (args, expected) in cases(made).items():
        code, _, err = run_main(args, monkeypatch, capsys)
        ok = code == 2 and "Traceback" not in err and "bsr_lightning: error:" in err and expected in err
        if not ok:
            failures.append(f"{name}: exit {code}, stderr tail {err[-300:]!r}")
    assert not failures, "\n".join(failures)
    assert not (made["root"] / "out").exists()  # nothing failed halfway into an output folder
    metrics = cli_main(["evaluate", "--model", made["export"], "--data", str(made["root"] / "wide.csv"),
                        "--output_dir", str(made["root"] / "wide")])  # a 140,000-character CSV cell is read
    assert metrics["pairs"] == 1 and metrics["length_policy"]["truncated"] == 1
    assert json.loads((made["root"] / "pairs.jsonl").read_text().splitlines()[0]) == ROW


@pytest.mark.parametrize("code", ["ENOSPC", "EACCES", "EROFS"])
def test_a_full_or_read_only_output_folder_is_one_message(monkeypatch, capsys, tmp_path, code):
    import errno

    import bsr_lightning.cli as cli

    def refuse(args):
        raise OSError(getattr(errno, code), "refused by the system", str(tmp_path / "out" / "metrics.json"))

    monkeypatch.setitem(cli.COMMANDS, "evaluate", refuse)
    monkeypatch.setattr(sys, "argv", ["bsr_lightning", "evaluate"])
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err and "cannot write" in err and "metrics.json" in err
