"""The paper's validation sets as released (issue 34, item 3): rows keyed ``instruction``, ``response_{1..4}_text``
and ``all_scores``, as the authors' ``scripts/run_kendall.py`` reads them, give exactly the scores and Kendall tau of
the same rows keyed ``prompt``."""

import json

import torch

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.backbones.export import export_module
from bsr_lightning.evaluation.evaluate import evaluate
from conftest import write_jsonl


def test_rows_keyed_instruction_read_as_run_kendall_reads_them(tiny_llama, tmp_path):
    torch.manual_seed(0)
    model = str(export_module(RewardModel(Backbone(tiny_llama), score_init="normal"), tmp_path / "rm"))
    rows = [{"instruction": f"How do I start {topic}?", "response_1_text": "Practice daily.",
             "response_2_text": "no", "response_3_text": f"Find a {topic} club.", "response_4_text": "Read a book.",
             "all_scores": [0.9, 0.1, 0.7, 0.5]} for topic in ("chess", "baking", "running")]
    keyed_prompt = [{"prompt": r["instruction"], **{k: v for k, v in r.items() if k != "instruction"}} for r in rows]
    a = evaluate(model, write_jsonl(tmp_path / "instruction.jsonl", rows), str(tmp_path / "a"), format="multi")
    b = evaluate(model, write_jsonl(tmp_path / "prompt.jsonl", keyed_prompt), str(tmp_path / "b"), format="multi")
    assert a["prompts"] == 3 and a["kendall_tau"] == b["kendall_tau"]
    scores = [[json.loads(line)["scores"] for line in open(tmp_path / d / "scores.jsonl")] for d in ("a", "b")]
    assert scores[0] == scores[1] and len(scores[0][0]) == 4
