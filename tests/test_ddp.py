"""DDP and FSDP2 (``ModelParallelStrategy`` + ``fully_shard``) with 2 gloo processes on CPU: disjoint data, a
global BSR penalty, equal weights on both ranks, and the same exported model from both strategies."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO, free_port

WEIGHT = 0.1


def run_two_processes(model: str, root, strategy: list[str], extra: tuple[str, ...] = ()):
    from bsr_lightning.synthetic_task import generate_preference_rows
    from conftest import write_jsonl

    data = write_jsonl(root / "prefs.jsonl", generate_preference_rows(40, seed=3))
    args = [sys.executable, "-m", "bsr_lightning", "fit", "--model", "bsr_lightning.RewardModel",
            "--model.backbone.name", model, "--model.optimization.lr", "1e-3", "--model.regularizer",
            "bsr_lightning.reward.regularizers.BatchSumToZero", "--model.regularizer.weight", str(WEIGHT),
            "--model.regularizer.scope", "global", "--data", "bsr_lightning.PreferenceDataModule",
            "--data.path", data, "--data.batch_size", "4", "--data.val_fraction", "0.2", "--data.max_length", "128",
            "--trainer.accelerator", "cpu", *strategy, "--trainer.devices", "2",
            "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(root), "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false",
            "--seed_everything", "0", "--trainer.callbacks+=ddp_helpers.RecordRank",
            "--trainer.callbacks.out_dir", str(root),
            "--trainer.callbacks+=bsr_lightning.training.callbacks.ExportOnFitEnd",
            "--trainer.callbacks.output_dir", str(root / "export"),
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            "--trainer.callbacks.dirpath", str(root / "ckpt"), "--trainer.callbacks.save_last", "true", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
           "MASTER_PORT": str(free_port())}
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    steps = [[json.loads(line) for line in open(root / f"steps_rank{r}.jsonl")] for r in (0, 1)]
    return root, steps


@pytest.fixture(scope="module")
def ddp_run(tiny_llama, tmp_path_factory):
    return run_two_processes(tiny_llama, tmp_path_factory.mktemp("ddp"), ["--trainer.strategy", "ddp"])


@pytest.fixture(scope="module")
def fsdp2_run(tiny_llama, tmp_path_factory):
    strategy = ["--trainer.strategy", "lightning.pytorch.strategies.ModelParallelStrategy",
                "--trainer.strategy.data_parallel_size", "2", "--trainer.strategy.tensor_parallel_size", "1"]
    return run_two_processes(tiny_llama, tmp_path_factory.mktemp("fsdp2"), strategy)


def test_ranks_end_with_equal_weights(ddp_run):
    root, _ = ddp_run
    w0, w1 = (torch.load(root / f"weights_rank{r}.pt", weights_only=True) for r in (0, 1))
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)


def test_ranks_see_disjoint_halves_of_each_epoch(ddp_run):
    _, (rank0, rank1) = ddp_run
    assert len(rank0) == len(rank1) == 8  # 30 train pairs / (2 ranks x 4) = 4 steps x 2 epochs
    covered = []
    for epoch in (0, 1):
        seen = [[i for s in rank if s["epoch"] == epoch for i in s["row_ids"]] for rank in (rank0, rank1)]
        assert not set(seen[0]) & set(seen[1])  # no pair on both ranks
        covered.append(sorted(seen[0] + seen[1]))
    assert covered[0] == covered[1] and len(covered[0]) == 30  # every train pair once per epoch
    epoch_order = [[i for s in rank0 if s["epoch"] == e for i in s["row_ids"]] for e in (0, 1)]
    assert epoch_order[0] != epoch_order[1]  # reshuffled per epoch


def test_global_bsr_penalty_uses_both_ranks_rewards(ddp_run):
    _, (rank0, rank1) = ddp_run
    for s0, s1 in zip(rank0, rank1, strict=True):
        rewards = torch.tensor(s0["rewards"] + s1["rewards"], dtype=torch.float64)  # 2 ranks x 2B
        expected = WEIGHT * 4 * 2 * rewards.mean() ** 2  # B: the configured 4 pairs per device x 2 ranks
        assert s0["penalty"] == pytest.approx(float(expected), rel=1e-3, abs=1e-7)
        assert s1["penalty"] == pytest.approx(s0["penalty"], rel=1e-5, abs=1e-9)


def test_fsdp2_shards_weights_and_exports_the_same_model_as_ddp(ddp_run, fsdp2_run, tiny_llama):
    from transformers import AutoModelForSequenceClassification

    ddp_root, fsdp_root = ddp_run[0], fsdp2_run[0]
    shards = [json.loads((fsdp_root / f"shards_rank{r}.json").read_text()) for r in (0, 1)]
    q_proj = "backbone.model.layers.0.self_attn.q_proj.weight"
    assert shards[0][q_proj] == shards[1][q_proj] == [16, 32]  # each rank holds half of the (32, 32) weight
    assert [s["row_ids"] for s in fsdp2_run[1][0]] == [s["row_ids"] for s in ddp_run[1][0]]  # same data per rank

    exported = [AutoModelForSequenceClassification.from_pretrained(root / "export").eval()
                for root in (ddp_root, fsdp_root)]
    ddp_state, fsdp_state = (m.state_dict() for m in exported)
    assert ddp_state.keys() == fsdp_state.keys()
    # data parallelism with gradient averaging either way: the same training up to float reduction order
    assert all(torch.allclose(ddp_state[k], fsdp_state[k], atol=1e-5) for k in ddp_state)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_llama).state_dict()
    assert not torch.allclose(base["score.weight"], fsdp_state["score.weight"])  # it trained


def test_fsdp2_sharded_checkpoint_exports_the_full_model(fsdp2_run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from bsr_lightning.cli import cli_main

    root = fsdp2_run[0]
    assert (root / "ckpt" / "last.ckpt").is_dir()  # one shard file per rank
    cli_main(["export", "--ckpt_path", str(root / "ckpt" / "last.ckpt"), "--output_dir", str(tmp_path / "export")])
    from_shards, at_fit_end = (AutoModelForSequenceClassification.from_pretrained(p).state_dict()
                               for p in (tmp_path / "export", root / "export"))
    assert from_shards.keys() == at_fit_end.keys()
    assert all(torch.equal(from_shards[k], at_fit_end[k]) for k in from_shards)


def test_a_nan_on_one_rank_is_skipped_on_every_rank_without_a_hang(tiny_llama, tmp_path):
    """on_nonfinite: skip under DDP: rank 0 alone sees a NaN penalty at its second batch; both ranks skip that batch
    together (a rank skipping alone would leave the other waiting in the gradient all-reduce until the timeout): a
    zero loss keeps DDP's all-reduce in step, and the gradients are dropped so the optimizer leaves the weights."""
    root, steps = run_two_processes(tiny_llama, tmp_path, ["--trainer.strategy", "ddp"],
                                    ("--model.regularizer", "ddp_helpers.NaNOnRankZero", "--model.on_nonfinite",
                                     "skip", "--trainer.max_epochs", "1"))
    for rank in (0, 1):
        assert steps[rank][-1]["skipped"] == 1
        assert steps[rank][0]["skipped"] == 0 and steps[rank][1]["skipped"] == 1
    w0, w1 = (torch.load(root / f"weights_rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(w0[k], w1[k]) and torch.isfinite(w0[k]).all() for k in w0)
