import json

from bsr_lightning.cli import cli_main
from bsr_lightning.experiments.scenarios import build_scenarios
from conftest import write_jsonl


def table() -> list[dict]:
    return [{"prompt": f"{g}-p{p}", "response": f"{g}-p{p}-{m}", "score": float((p + i) % 8), "group": g,
             "generator": m} for g in "abcde" for p in range(3) for i, m in enumerate([f"m{k}" for k in range(8)])]


def test_scenarios_are_disjoint_and_deterministic():
    rows = table()
    out = build_scenarios(rows, group_fraction=0.2, generator_fraction=0.25, seed=3)
    assert out == build_scenarios(rows, group_fraction=0.2, generator_fraction=0.25, seed=3)
    assert out["skipped_single_response"] == []
    group_of = {r["prompt"]: r["group"] for r in rows}
    gen_of = {r["response"]: r["generator"] for r in rows}
    train_groups = {group_of[p["prompt"]] for p in out["train"]}
    train_gens = {gen_of[p[k]] for p in out["train"] for k in ("chosen", "rejected")}
    val2_groups = {group_of[s["prompt"]] for s in out["val2"]}
    val3_gens = {gen_of[r] for s in out["val3"] for r in s["responses"]}
    assert len(val2_groups) == 1 and not val2_groups & train_groups
    assert len(val3_gens) == 2 and not val3_gens & train_gens
    assert {group_of[s["prompt"]] for s in out["val4"]} == val2_groups
    assert {gen_of[r] for s in out["val4"] for r in s["responses"]} == val3_gens
    train_responses = {p[k] for p in out["train"] for k in ("chosen", "rejected")}
    assert not train_responses & {p[k] for p in out["val1"] for k in ("chosen", "rejected")}
    scores = {r["response"]: r["score"] for r in rows}
    assert all(scores[p["chosen"]] > scores[p["rejected"]] for p in out["train"] + out["val1"])


def test_scenarios_command_writes_five_files(tmp_path):
    data = write_jsonl(tmp_path / "table.jsonl", table())
    counts = cli_main(["scenarios", "--data", data, "--output_dir", str(tmp_path / "out"),
                       "--generator_fraction", "0.25"])
    assert counts["skipped_single_response"] == 0
    for name in ("train", "val1", "val2", "val3", "val4"):
        lines = (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == counts[name] > 0 and json.loads(lines[0])


def test_sweep_tabulates_every_regularizer_and_scenario(tmp_path, tiny_llama):
    import csv

    cli_main(["scenarios", "--data", write_jsonl(tmp_path / "table.jsonl", table()), "--output_dir",
              str(tmp_path / "sc"), "--generator_fraction", "0.25"])
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
