"""The four scenarios on a generated UltraFeedback-shaped table: exactly four responses per Val2-Val4 prompt, the
per-split report of what training has seen, Val1's definition, and the output-folder rules."""

import json

import numpy as np
import pytest

from bsr_lightning.cli import cli_main
from bsr_lightning.errors import UserError
from bsr_lightning.experiments.scenarios import build_scenarios, scenario_report
from conftest import write_jsonl

GENERATORS = [f"m{k}" for k in range(12)]


def table(prompts_per_group: int = 10) -> list[dict]:
    """UltraFeedback-shaped: prompts from 5 source datasets, each answered by 12 generators (gold score seeded),
    plus one prompt of a held-in group answered by 3 generators only."""
    rng = np.random.default_rng(0)
    rows = [{"prompt": f"{g}-p{p}", "response": f"{g}-p{p}-{m}", "score": float(rng.normal()), "group": g,
             "generator": m} for g in "abcde" for p in range(prompts_per_group) for m in GENERATORS]
    return rows + [{"prompt": f"{g}-short", "response": f"{g}-short-{m}", "score": float(i), "group": g,
                    "generator": m} for g in "abcde" for i, m in enumerate(GENERATORS[:3])]


def test_val2_to_val4_hold_exactly_four_responses_and_the_report_says_what_train_saw():
    rows = table()
    out = build_scenarios(rows, group_fraction=0.2, generator_fraction=0.34, val1_fraction=0.2, seed=3)
    assert out == build_scenarios(rows, group_fraction=0.2, generator_fraction=0.34, val1_fraction=0.2, seed=3)
    for split in ("val2", "val3", "val4"):
        assert out[split] and {len(s["responses"]) for s in out[split]} == {4}
        assert all(len(set(s["responses"])) == 4 for s in out[split])
    # the 3-response prompts cannot make 4-response sets: dropped and counted, never written
    assert {d["prompt"].split("-")[1] for d in out["dropped"]} == {"short"}
    report = scenario_report(out, rows, "group", "generator", 4)["splits"]
    assert report["val1"]["prompts_seen_in_train"] == 0 and report["val1"]["generators_seen_in_train"] == 8
    assert report["val2"]["prompts_seen_in_train"] == 0 and report["val2"]["groups_seen_in_train"] == 0
    assert report["val3"]["prompts_seen_in_train"] == report["val3"]["prompts"] > 0  # only the responses change
    assert report["val3"]["generators_seen_in_train"] == 0 and report["val3"]["generators"] == 4
    assert report["val4"]["prompts_seen_in_train"] == 0 and report["val4"]["generators_seen_in_train"] == 0
    assert sum(r["dropped_too_few_responses"] for r in report.values()) == len(out["dropped"]) > 0


def test_val1_is_held_out_prompts_of_the_training_groups_answered_by_training_generators():
    rows = table()
    out = build_scenarios(rows, group_fraction=0.2, generator_fraction=0.34, val1_fraction=0.2, seed=3)
    group_of = {r["prompt"]: r["group"] for r in rows}
    gen_of = {r["response"]: r["generator"] for r in rows}
    train_prompts = {p["prompt"] for p in out["train"]}
    val1_prompts = {p["prompt"] for p in out["val1"]}
    assert val1_prompts and not val1_prompts & train_prompts
    assert {group_of[p] for p in val1_prompts} <= {group_of[p] for p in train_prompts}
    val1_gens = {gen_of[p[k]] for p in out["val1"] for k in ("chosen", "rejected")}
    assert val1_gens <= {gen_of[p[k]] for p in out["train"] for k in ("chosen", "rejected")}
    scores = {r["response"]: r["score"] for r in rows}
    assert all(scores[p["chosen"]] > scores[p["rejected"]] for p in out["train"] + out["val1"])


def test_scenarios_command_writes_the_splits_and_report_and_refuses_to_overwrite_the_users_files(tmp_path):
    data = write_jsonl(tmp_path / "table.jsonl", table())
    args = ["scenarios", "--data", data, "--output_dir", str(tmp_path / "out"), "--generator_fraction", "0.34"]
    counts = cli_main(args)
    for name in ("train", "val1", "val2", "val3", "val4"):
        lines = (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == counts[name] > 0 and json.loads(lines[0])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["responses_per_prompt"] == 4 and "ID" in report["definitions"]["val1"]
    assert cli_main(args) == counts  # its own earlier output is replaced
    with pytest.raises(UserError, match=r"would write its output over its input .*train.jsonl"):
        cli_main(["scenarios", "--data", str(tmp_path / "out" / "train.jsonl"), "--output_dir",
                  str(tmp_path / "out")])
    (tmp_path / "out" / "notes.md").write_text("mine")
    with pytest.raises(UserError, match=r"holds 1 file\(s\) scenarios did not write \(e.g. 'notes.md'\).*--overwrite"):
        cli_main(args)
    cli_main([*args, "--overwrite", "true"])
    assert (tmp_path / "out" / "notes.md").read_text() == "mine"


def test_sweep_tabulates_every_regularizer_and_scenario(tmp_path, tiny_llama):
    import csv

    cli_main(["scenarios", "--data", write_jsonl(tmp_path / "table.jsonl", table(4)), "--output_dir",
              str(tmp_path / "sc"), "--generator_fraction", "0.34", "--val1_fraction", "0.3"])
    config = tmp_path / "cfg.yaml"
    config.write_text("model:\n  class_path: bsr_lightning.RewardModel\n"
                      f"  init_args:\n    backbone:\n      name: {tiny_llama}\n")
    rows = cli_main(["sweep", "--config", str(config), "--scenario_dir", str(tmp_path / "sc"), "--output_dir",
                     str(tmp_path / "sweep"), "--regularizers", "[NoRegularizer, BatchSumToZero]", "--seeds", "[0, 1]",
                     "--overrides", '["--trainer.max_steps", "2", "--trainer.accelerator", "cpu"]'])
    assert [r["regularizer"] for r in rows] == ["NoRegularizer", "BatchSumToZero"]
    written = list(csv.DictReader(open(tmp_path / "sweep" / "table.csv")))
    assert 0.0 <= float(written[1]["val1_mean"]) <= 1.0 and -1.0 <= float(written[0]["val4_mean"]) <= 1.0
    assert "± " in (tmp_path / "sweep" / "table.md").read_text()
    assert (tmp_path / "sweep" / "table.png").read_bytes()[:4] == b"\x89PNG"


def test_an_empty_split_is_written_with_a_warning_that_says_why(tmp_path, caplog):
    import logging

    data = write_jsonl(tmp_path / "table.jsonl", table())
    with caplog.at_level(logging.WARNING):
        counts = cli_main(["scenarios", "--data", data, "--output_dir", str(tmp_path / "out"), "--generator_fraction",
                           "0.1"])  # 1 held-out generator: no prompt has 4 responses from it
    assert counts["val3"] == counts["val4"] == 0 and (tmp_path / "out" / "val3.jsonl").read_text() == ""
    assert "val3 is empty" in caplog.text and "lower --responses_per_prompt" in caplog.text
