"""The README's Evaluate block runs as written (on tiny exports standing in for the demo's models), reading the
sample files that ship in ``examples/``."""

import pytest

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.backbones.export import export_module
from bsr_lightning.cli import cli_main
from conftest import REPO, load_script
from test_readme_blocks import commands_matching


def test_the_readme_evaluate_block_runs_as_written(tiny_llama, tmp_path, monkeypatch):
    for name in ("quickstart", "my_regs"):
        export_module(RewardModel(Backbone(tiny_llama), score_init="normal"),
                      tmp_path / "artifacts" / name / "reward_model")
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    lines = commands_matching(r"^python -m bsr_lightning (evaluate|diagnose|scenarios) ")
    assert len(lines) >= 7
    for line in lines:
        args = line[3:]  # after `python -m bsr_lightning`
        result = cli_main(args)
        if args[0] == "evaluate":
            out = tmp_path / args[args.index("--output_dir") + 1]
            assert (out / "metrics.json").is_file() and (out / "scores.jsonl").read_text(), line
        elif args[0] == "scenarios":
            assert all(result[split] > 0 for split in ("train", "val1", "val2", "val3", "val4")), result
        else:
            assert set(result) == {"BSR", "HiddenNormPenalty"}, line


@pytest.mark.parametrize("name", ["pairs.jsonl", "multi.jsonl", "multi_paper_format.jsonl", "rewardbench.jsonl",
                                  "rmbench.json", "responses.jsonl"])
def test_the_examples_are_what_the_script_writes(name, tmp_path, monkeypatch):
    module = load_script("make_examples")
    monkeypatch.setattr(module, "OUT", tmp_path)
    module.main()
    assert (tmp_path / name).read_text() == (REPO / "examples" / name).read_text()
