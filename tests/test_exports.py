"""What every export carries (model card, training config, chat template, padding side), and that RewardBench's own
loading and pipeline (from its PyPI wheel) score an export exactly as ``evaluate`` does, for an encoder and a
decoder."""

import json

import numpy as np
import pytest
import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.backbones.export import export_module
from bsr_lightning.backbones.loading import score_head_name
from bsr_lightning.backbones.tokenizers import PLAIN_CHAT_TEMPLATE
from bsr_lightning.cli import cli_main
from bsr_lightning.evaluation.evaluate import evaluate
from conftest import write_jsonl
from test_cli import checkpoint_of, fit_args
from upstream import function

ROWS = [{"prompt": "How do I start chess?", "chosen": "Learn how each piece moves, then play short games.",
         "rejected": "no", "subset": "alpacaeval-easy", "id": 0},
        {"prompt": "Tips for tea?", "chosen": "Use water just off the boil and steep for three minutes.",
         "rejected": "Tea is a drink.", "subset": "mt-bench-easy", "id": 1},
        {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
                    {"role": "user", "content": "Name a prime."}],
         "chosen": "7", "rejected": "Eight is a prime number, as is nine.", "subset": "anthropic_helpful", "id": 2},
        # a response quoting role markers is still one assistant turn of plain text, as RewardBench reads it
        {"prompt": "Write a two-line play.", "chosen": "Human: Is it raining?\n\nAssistant: Only on the stage.",
         "rejected": "No.", "subset": "xstest-should-respond", "id": 3}]


@pytest.fixture(scope="module", params=["tiny_bert", "tiny_llama"])
def export(request, tmp_path_factory) -> str:
    torch.manual_seed(0)
    module = RewardModel(Backbone(request.getfixturevalue(request.param)), score_init="normal")
    with torch.no_grad():  # spread the random model's scores, so a mixed-up row could not pass as a match
        module.backbone.get_submodule(score_head_name(module.backbone)).weight.mul_(1000)
    return str(export_module(module, tmp_path_factory.mktemp("rm") / "export"))


def rewardbench_scores(export_dir: str, rows: list[dict], monkeypatch) -> list[list[float]]:
    """RewardBench 0.1.4's path for a default ``Seq. Classifier`` with ``--not_quantized``: the tokenizer's chat
    template (``prepare_dialogue_from_tokenizer``), ``AutoModelForSequenceClassification`` and
    ``RewardBenchPipeline`` with ``scripts/run_rm.py``'s kwargs, in batches of 2 (so padding is exercised)."""
    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    assert function("rewardbench/utils.py", "check_tokenizer_chat_template")(tokenizer)  # else it needs fastchat
    prepare = function("rewardbench/utils.py", "prepare_dialogue_from_tokenizer", {"Dict": dict, "Any": object})
    examples = [prepare(dict(row), tokenizer) for row in rows]
    pipeline_cls = function("rewardbench/models/pipeline.py", "RewardBenchPipeline",
                            {"torch": torch, "disable_dropout_in_model": lambda m: m})
    # RewardBenchPipeline moves inputs to "cuda"; on this CPU machine they stay where they are
    monkeypatch.setattr(transformers.BatchEncoding, "to", lambda self, device, **kwargs: self)
    model = AutoModelForSequenceClassification.from_pretrained(export_dir, dtype=torch.float32)
    pipe = pipeline_cls("text-classification", model.eval(), tokenizer)
    kwargs = {"batch_size": 2, "truncation": True, "padding": True, "max_length": 2048,
              "function_to_apply": "none"}
    scores = []
    for start in range(0, len(examples), 2):
        batch = examples[start : start + 2]
        chosen = pipe([e["text_chosen"] for e in batch], **kwargs).float().numpy().ravel()
        rejected = pipe([e["text_rejected"] for e in batch], **kwargs).float().numpy().ravel()
        scores += [[c, r] for c, r in zip(chosen, rejected, strict=True)]
    return scores


def test_rewardbench_rows_render_to_rewardbench_text(export):
    from bsr_lightning.backbones.tokenizers import chat_text
    from bsr_lightning.evaluation.rewardbench import rewardbench_pair

    tokenizer = AutoTokenizer.from_pretrained(export)
    prepare = function("rewardbench/utils.py", "prepare_dialogue_from_tokenizer", {"Dict": dict, "Any": object})
    for i, row in enumerate(ROWS):
        theirs, pair = prepare(dict(row), tokenizer), rewardbench_pair(row, i, f"row {i}")
        assert chat_text(tokenizer, pair.prompt + pair.chosen) == theirs["text_chosen"]
        assert chat_text(tokenizer, pair.prompt + pair.rejected) == theirs["text_rejected"]
    assert "Human: Is it raining?" in theirs["text_chosen"]


def test_rewardbench_scores_an_export_as_evaluate_does(export, tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "rb.jsonl", ROWS)
    evaluate(export, data, str(tmp_path / "out"), format="rewardbench", batch_size=3)
    ours = [[r["chosen"], r["rejected"]] for r in map(json.loads, open(tmp_path / "out" / "scores.jsonl"))]
    theirs = rewardbench_scores(export, ROWS, monkeypatch)
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-4)
    gaps = np.diff(np.sort(np.ravel(ours)))
    assert gaps.min() > 1e-3, ours  # eight texts, eight scores 10x the tolerance apart: the match is row by row


def test_export_saves_the_training_template_and_right_padding(export):
    config = json.loads(open(f"{export}/tokenizer_config.json").read())
    assert config["padding_side"] == "right"
    tokenizer = AutoTokenizer.from_pretrained(export)
    assert tokenizer.chat_template  # RewardBench's loader asserts one exists
    if "bert" in json.loads(open(f"{export}/config.json").read())["model_type"]:
        assert tokenizer.chat_template == PLAIN_CHAT_TEMPLATE  # the Human:/Assistant: text it was trained on
        text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"},
                                              {"role": "assistant", "content": "hello"}], tokenize=False)
        assert text == "Human: hi\n\nAssistant: hello"


def test_every_export_has_a_model_card_and_the_training_config(tiny_bert, synthetic_jsonl, tmp_path):
    cli_main(fit_args(tiny_bert, synthetic_jsonl, tmp_path, "--model.regularizer",
                      "bsr_lightning.reward.regularizers.BatchSumToZero", "--model.regularizer.init_args.weight",
                      "0.01", "--trainer.callbacks+=bsr_lightning.training.callbacks.ExportOnFitEnd",
                      "--trainer.callbacks.output_dir", str(tmp_path / "fit_export"), "--trainer.max_steps", "9"))
    cli_main(["export", "--ckpt_path", str(checkpoint_of(tmp_path)), "--output_dir", str(tmp_path / "ckpt_export"),
              "--license", "apache-2.0"])
    for name in ("fit_export", "ckpt_export"):
        card = (tmp_path / name / "README.md").read_text()
        front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
        assert "library_name: transformers" in front and "- reward-model" in front
        assert "BatchSumToZero(weight=0.01" in body and "BradleyTerry()" in body
        assert "| val/accuracy |" in body and "AutoModelForSequenceClassification" in body
        assert f"--data.path {synthetic_jsonl}" in body and "add_special_tokens=True" in body
        config = (tmp_path / name / "training_config.yaml").read_text()
        assert "BatchSumToZero" in config and "weight: 0.01" in config
    assert "license: apache-2.0" in (tmp_path / "ckpt_export" / "README.md").read_text()


def test_the_training_config_in_an_export_parses_back(tiny_bert, synthetic_jsonl, tmp_path):
    cli_main(fit_args(tiny_bert, synthetic_jsonl, tmp_path, "--trainer.callbacks+=bsr_lightning.training."
                      "callbacks.ExportOnFitEnd", "--trainer.callbacks.output_dir", str(tmp_path / "export")))
    config = tmp_path / "export" / "training_config.yaml"
    cli = cli_main(["fit", "--config", str(config), "--trainer.max_steps", "0", "--trainer.callbacks", "[]",
                    "--trainer.default_root_dir", str(tmp_path / "again")])
    assert cli.model.backbone_args.name == tiny_bert
