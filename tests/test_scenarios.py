"""The four scenarios on a generated UltraFeedback-shaped table: exactly four responses per Val2-Val4 prompt, the
per-split report of what training has seen, Val1's definition, and the output-folder rules."""

import itertools
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


def wide_table(generators: int, per_prompt: int, prompts_per_group: int, seed: int = 0) -> list[dict]:
    """Prompts of 5 groups, each answered by ``per_prompt`` of ``generators`` models (all of them, or a seeded
    choice as in UltraFeedback's 4 of 17)."""
    rng = np.random.default_rng(seed)
    names = [f"m{k}" for k in range(generators)]
    rows = []
    for g in "abcde":
        for p in range(prompts_per_group):
            for m in sorted(rng.choice(names, per_prompt, replace=False).tolist()):
                rows.append({"prompt": f"{g}-p{p}", "response": f"{g}-p{p}-{m}", "score": float(rng.normal()),
                             "group": g, "generator": m})
    return rows


def split_texts(out: dict) -> dict[str, set]:
    return {s: {t for item in out[s] for t in ([item["chosen"], item["rejected"]] if "chosen" in item
                                               else item["responses"])} for s in ("train", "val1", "val2", "val3",
                                                                                   "val4")}


@pytest.mark.parametrize("generators, per_prompt, prompts", [(17, 17, 10), (8, 8, 10), (17, 4, 80)],
                         ids=["17-each-answering-all", "8-each-answering-all", "ultrafeedback-4-of-17"])
def test_the_defaults_give_every_split_on_the_papers_kind_of_table(tmp_path, generators, per_prompt, prompts):
    """Issue 34, item 5: with 17 generators each answering every prompt, 20% held out is 3, and Val3/Val4 (4
    held-out responses per prompt) were empty; with 4 of 17 per prompt they stayed empty even at 0.3."""
    data = write_jsonl(tmp_path / "table.jsonl", wide_table(generators, per_prompt, prompts))
    counts = cli_main(["scenarios", "--data", data, "--output_dir", str(tmp_path / "out")])
    assert all(counts[s] > 0 for s in ("train", "val1", "val2", "val3", "val4")), counts
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["generator_fraction"] >= 0.2 and round(report["generator_fraction"] * generators) >= 4
    assert report["splits"]["val3"]["generators_seen_in_train"] == 0


def test_no_response_text_is_in_two_splits_and_each_generator_counts_in_its_own():
    """Issue 34, item 6: a held-out generator that writes the same text as a training one for the same prompt put
    that text in Val3 and in training, and ``report.json`` counted it among the training generators."""
    rows = wide_table(12, 12, 10)
    out = build_scenarios(rows, generator_fraction=0.34, seed=3)
    held = set(out["generators"]["val3"])
    train_gen = out["generators"]["train"][0]
    twins = [{**r, "generator": "terse", "response": next(x["response"] for x in rows if x["prompt"] == r["prompt"]
                                                           and x["generator"] == train_gen)}
             for r in rows if r["generator"] == next(iter(held))]
    rows = [r for r in rows if r["generator"] != next(iter(held))] + twins  # 'terse' copies a training generator
    out = build_scenarios(rows, generator_fraction=0.34, seed=3)
    texts = split_texts(out)
    for a, b in itertools.combinations(texts, 2):
        assert not texts[a] & texts[b], (a, b)
    report = scenario_report(out, rows, "group", "generator", 4)["splits"]
    assert "terse" in out["generators"]["val4"] and "terse" not in out["generators"]["train"]  # held out (seed 3)
    assert report["val4"]["generators_seen_in_train"] == 0
    # Val3's prompts are training prompts, where terse's texts are the training generator's: left out of Val3, whose
    # sets then fall short of 4 and are dropped and counted
    assert not out["val3"] and report["val3"]["dropped_too_few_responses"] > 0


def test_a_table_that_cannot_give_val3_is_one_message(tmp_path):
    data = write_jsonl(tmp_path / "table.jsonl", wide_table(5, 2, 4))  # 2 responses per prompt: never 4
    with pytest.raises(UserError, match="lower --responses_per_prompt"):
        cli_main(["scenarios", "--data", data, "--output_dir", str(tmp_path / "out")])
