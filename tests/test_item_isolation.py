"""One item's failure is that item's (issue 32, finding 14), in ``evaluate`` and in training: a row whose special
tokens alone fill ``max_length`` is a bad row naming itself, and under ``--bad_rows skip`` the others are scored as
if it were not there."""

import json

import pytest
import torch

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.backbones.export import export_module
from bsr_lightning.backbones.tokenizers import load_tokenizer
from bsr_lightning.cli import cli_main
from bsr_lightning.data.encoding import PairEncoder
from bsr_lightning.data.formats import PreferencePair
from conftest import run_main, write_jsonl

ROWS = [{"prompt": "How do I start chess?", "chosen": f"Learn the moves {i}.", "rejected": "no"} for i in range(4)]
HOSTILE = {"prompt": "hi", "chosen": "</s>" * 200, "rejected": "fine"}


def test_evaluate_names_the_row_and_skips_only_it(tiny_llama, tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    model = str(export_module(RewardModel(Backbone(tiny_llama), score_init="normal"), tmp_path / "rm"))
    data = write_jsonl(tmp_path / "pairs.jsonl", [ROWS[0], ROWS[1], HOSTILE, ROWS[2], ROWS[3]])
    args = ["evaluate", "--model", model, "--data", data, "--max_length", "64"]
    code, _, err = run_main([*args, "--output_dir", str(tmp_path / "a")], monkeypatch, capsys)
    assert code == 2 and "pairs.jsonl:3" in err and "leave no room for text under max_length=64" in err, err
    code, _, err = run_main([*args, "--output_dir", str(tmp_path / "b"), "--bad_rows", "skip"], monkeypatch, capsys)
    assert code == 0, err
    clean = write_jsonl(tmp_path / "clean.jsonl", ROWS)
    cli_main(["evaluate", "--model", model, "--data", clean, "--max_length", "64", "--output_dir", str(tmp_path / "c")])
    skipped = [json.loads(line) for line in open(tmp_path / "b" / "scores.jsonl")]
    alone = [json.loads(line) for line in open(tmp_path / "c" / "scores.jsonl")]
    got = [s for r in skipped for s in (r["chosen"], r["rejected"])]
    assert got == pytest.approx([s for r in alone for s in (r["chosen"], r["rejected"])], abs=1e-5)
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["bad_rows"]["skipped"] == 1


def test_training_counts_such_a_pair_as_a_bad_row(tiny_llama):
    tok = load_tokenizer(tiny_llama)
    pairs = [PreferencePair(prompt=[{"role": "user", "content": r["prompt"]}],
                            chosen=[{"role": "assistant", "content": r["chosen"]}],
                            rejected=[{"role": "assistant", "content": r["rejected"]}], row_id=i, where=f"row {i}")
             for i, r in enumerate([ROWS[0], HOSTILE])]
    encoded, counts = PairEncoder(tok, 64, "truncate_left", bad_rows="skip").encode(pairs, "train")
    assert [e.row_id for e in encoded] == [0] and counts["bad_no_room"] == 1
    try:
        PairEncoder(tok, 64, "truncate_left").encode(pairs, "train")
    except ValueError as err:
        assert "row 1" in str(err) and "no room" in str(err)
    else:
        raise AssertionError("the pair was not refused")
