"""End to end through ``python -m bsr_lightning``: fit, export, reload, equal scores; user regularizers; errors."""

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bsr_lightning.cli import cli_main
from bsr_lightning.data.collate import pad_sequences
from bsr_lightning.training.checkpoints import load_module_from_checkpoint
from conftest import run_main, write_jsonl


def fit_args(model_path: str, data_path: str, root: Path, *extra: str) -> list[str]:
    return ["fit", "--model", "bsr_lightning.RewardModel", "--model.backbone.name", model_path,
            "--model.optimization.lr", "1e-3", "--data", "bsr_lightning.PreferenceDataModule", "--data.path", data_path,
            "--data.batch_size", "4", "--data.val_fraction", "0.25", "--data.max_length", "128",
            "--trainer.max_steps", "3", "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(root),
            "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1", *extra]


def checkpoint_of(root: Path) -> Path:
    return next(root.rglob("*.ckpt"))


def test_fit_export_reload_scores_equal(tiny_llama, synthetic_jsonl, tmp_path):
    cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path, "--model.regularizer",
                      "bsr_lightning.reward.regularizers.BatchSumToZero",
                      "--model.regularizer.init_args.weight", "1e-2"))
    ckpt = checkpoint_of(tmp_path)
    out = tmp_path / "export"
    cli_main(["export", "--ckpt_path", str(ckpt), "--output_dir", str(out)])

    module = load_module_from_checkpoint(str(ckpt))
    assert module.regularizer.weight == 1e-2
    hf_model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    hf_tok = AutoTokenizer.from_pretrained(out)
    assert hf_tok.chat_template == module.tokenizer.chat_template and hf_tok.pad_token == "<|pad|>"
    texts = [hf_tok.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                        tokenize=False) for q, a in [("hi", "Happy to help!"), ("chess?", "no"),
                                                                     ("How do I start?", "Keep notes.")]]
    seqs = [hf_tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    ids, mask = pad_sequences(seqs, hf_tok.pad_token_id, "right")
    with torch.no_grad():
        exported = hf_model(input_ids=ids, attention_mask=mask).logits.squeeze(-1)
    assert torch.allclose(exported, module.score(ids, mask), atol=1e-5)
    trained = module.backbone.score.weight
    fresh = AutoModelForSequenceClassification.from_pretrained(tiny_llama).score.weight
    assert not torch.allclose(trained, fresh)  # the export holds the trained score head


def test_metrics_are_logged_to_csv(tiny_bert, synthetic_jsonl, tmp_path):
    cli_main(fit_args(tiny_bert, synthetic_jsonl, tmp_path, "--trainer.max_steps", "9"))
    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    names = set(rows[0])
    for name in ("train/loss_step", "train/accuracy_step", "train/hidden_norm_mean_step", "train/penalty_step",
                 "val/loss", "val/accuracy", "val/reward_mean", "val/reward_std", "val/chosen_reward",
                 "val/rejected_reward", "val/margin", "val/hidden_norm_mean", "val/hidden_norm_std",
                 "val/reward_length_corr",
                 "train/loss", "train/reward_std"):
        assert name in names, name
    accuracies = [float(r["val/accuracy"]) for r in rows if r.get("val/accuracy")]
    assert accuracies and all(0.0 <= a <= 1.0 for a in accuracies)


def test_user_regularizer_subclass_selected_from_cli(tiny_llama, synthetic_jsonl, tmp_path, monkeypatch):
    (tmp_path / "my_regs.py").write_text(textwrap.dedent("""
        import torch
        from bsr_lightning.reward.regularizers import Regularizer

        CALLS = []

        class L2Rewards(Regularizer):
            def __init__(self, weight: float = 0.1):
                self.weight = weight

            def penalty(self, chosen, rejected):
                CALLS.append(self.weight)
                return self.weight * (chosen.pow(2).mean() + rejected.pow(2).mean())
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_regs", raising=False)  # another test's my_regs may be imported already
    cli = cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path, "--model.regularizer", "my_regs.L2Rewards",
                            "--model.regularizer.init_args.weight", "0.25"))
    import my_regs

    assert type(cli.model.regularizer).__name__ == "L2Rewards" and my_regs.CALLS[:3] == [0.25] * 3


def test_print_config_round_trips(tiny_bert, synthetic_jsonl, tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    args = fit_args(tiny_bert, synthetic_jsonl, tmp_path, "--model.regularizer",
                    "bsr_lightning.reward.regularizers.LogitNorm")
    printed = subprocess.run([sys.executable, "-m", "bsr_lightning", *args, "--print_config"], capture_output=True,
                             text=True, check=True, env=env).stdout
    assert "class_path: bsr_lightning.reward.regularizers.LogitNorm" in printed
    config = tmp_path / "printed.yaml"
    config.write_text(printed)
    cli = cli_main(["fit", "--config", str(config), "--trainer.max_steps", "1"])
    assert type(cli.model.regularizer).__name__ == "LogitNorm" and cli.trainer.global_step == 1


def test_bad_data_stops_before_training_without_checkpoint(tiny_bert, tmp_path):
    rows = [{"prompt": "p", "chosen": f"a{i}", "rejected": "b"} for i in range(8)]
    rows.insert(5, {"prompt": "p", "chosen": "same", "rejected": "same"})
    data = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ValueError, match=r"bad\.jsonl:6: 'chosen' and 'rejected' are identical"):
        cli_main(fit_args(tiny_bert, data, tmp_path))
    assert not list(tmp_path.rglob("*.ckpt"))
    cli = cli_main(fit_args(tiny_bert, data, tmp_path, "--data.bad_rows", "skip", "--trainer.max_steps", "1"))
    assert cli.trainer.global_step == 1


def test_a_users_hidden_state_regularizer_trains_from_the_cli(tiny_llama, synthetic_jsonl, tmp_path):
    cli = cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path, "--model.regularizer",
                            "user_regularizers.HiddenNormPenalty", "--model.regularizer.weight", "0.01"))
    seen = cli.model.regularizer.seen
    hidden_size = cli.model.backbone.config.hidden_size  # 32
    train_calls = [s for s in seen if s[2]]  # training batches carry gradients; validation ones do not
    assert len(train_calls) == 3 and all(s[:2] == ((4, hidden_size), (4, hidden_size)) for s in train_calls)
    metrics = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    penalties = [float(r["train/penalty_step"]) for r in metrics if r.get("train/penalty_step")]
    assert len(penalties) == 3 and all(p > 0 for p in penalties)
    with pytest.raises(ValueError, match=r"user_regularizers.HiddenNormPenalty.*--allow_modules"):
        load_module_from_checkpoint(str(checkpoint_of(tmp_path)))  # a checkpoint never decides what is imported
    module = load_module_from_checkpoint(str(checkpoint_of(tmp_path)), allow_modules=["user_regularizers"])
    assert type(module.regularizer).__name__ == "HiddenNormPenalty" and module.regularizer.weight == 0.01


def test_a_checkpoint_cannot_name_arbitrary_classes(tiny_llama, synthetic_jsonl, tmp_path):
    cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path))
    checkpoint = torch.load(checkpoint_of(tmp_path), weights_only=True)
    marker = tmp_path / "owned"
    popen = {"class_path": "subprocess.Popen", "init_args": {"args": f"touch {marker}", "shell": True}}
    for name, change in (("top", {"_class_path": "subprocess.Popen", "args": f"touch {marker}", "shell": True}),
                         ("nested", {"regularizer": popen})):
        evil = tmp_path / f"{name}.ckpt"
        torch.save({**checkpoint, "hyper_parameters": {**checkpoint["hyper_parameters"], **change}}, evil)
        with pytest.raises(ValueError, match="subprocess.Popen|Popen"):
            load_module_from_checkpoint(str(evil))
    assert not marker.exists()


def test_one_help_lists_every_subcommand_and_each_has_its_own(tmp_path, monkeypatch, capsys):
    def run(*args: str) -> str:  # the subcommands' help in this process, through the same main()
        code, out, err = run_main(list(args), monkeypatch, capsys)
        assert code == 0, err[-2000:]
        return out

    done = subprocess.run([sys.executable, "-m", "bsr_lightning", "--help"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)  # the real entry point once
    assert done.returncode == 0, done.stderr[-2000:]
    top = done.stdout
    assert run("--help") == top
    for command in ("fit", "validate", "export", "evaluate", "diagnose", "scenarios", "sweep", "plan", "serve"):
        assert f"\n  {command} " in top, command
    plan = run("plan", "--help")
    assert plan.startswith("usage: python -m bsr_lightning plan --config") and "--json" in plan
    assert "Trainer" not in plan.split("\n")[0]
    export = run("export", "--help")
    assert "optionally upload it to the hub." in " ".join(export.split())  # the whole first paragraph
