"""SharedPrefix: each pair once as [shared prefix | chosen suffix | rejected suffix]; equal to Padded."""

import pytest
import torch

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.args import LoRA
from bsr_lightning.data.collate import pad_sequences
from bsr_lightning.errors import ConfigError
from bsr_lightning.reward.forward import Padded, SharedPrefix
from bsr_lightning.reward.prefix_layout import CHOSEN, PAD, PREFIX, REJECTED, allowed, batch_groups, build_rows
from bsr_lightning.reward.regularizers import BatchSumToZero, HiddenNormVariance

# (prefix, chosen suffix, rejected suffix) lengths: mixed prefixes, none, and one sequence a prefix of the other
SHAPES = [(6, 3, 5), (0, 4, 7), (11, 1, 2), (3, 9, 1), (1, 2, 2), (5, 0, 4)]


def pair_batch(model, side: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(2B, T)`` ids and mask, chosen rows first; suffixes start with different tokens."""
    g = torch.Generator().manual_seed(seed)
    chosen, rejected = [], []
    for p, c, r in SHAPES:
        prefix = torch.randint(10, 300, (p,), generator=g)
        chosen.append(torch.cat([prefix, torch.randint(10, 150, (c,), generator=g)]).numpy())
        rejected.append(torch.cat([prefix, torch.randint(150, 300, (r,), generator=g)]).numpy())
    return pad_sequences(chosen + rejected, model.tokenizer.pad_token_id, side)


def test_layout_by_hand():
    ids = torch.tensor([[7, 8, 9, 0], [7, 8, 5, 6]])  # chosen 7 8 9 (right padded), rejected 7 8 5 6
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    pieces = batch_groups(ids, mask)
    assert [p for _, p in pieces] == [2]
    rows = build_rows(pieces, pad_id=0)
    assert rows.input_ids.tolist() == [[7, 8, 9, 5, 6]]
    assert rows.position_ids.tolist() == [[0, 1, 2, 2, 3]]
    assert rows.segments.tolist() == [[PREFIX, PREFIX, CHOSEN, REJECTED, REJECTED]]
    assert rows.ends.tolist() == [2, 4]
    ok = allowed(rows.segments)[0, 0].int().tolist()
    assert ok == [[1, 0, 0, 0, 0],
                  [1, 1, 0, 0, 0],
                  [1, 1, 1, 0, 0],
                  [1, 1, 0, 1, 0],  # rejected never sees the chosen suffix
                  [1, 1, 0, 1, 1]]


def test_identical_sequences_keep_a_token_each_and_no_mask_row_is_empty():
    pieces = [([torch.tensor([4, 5, 6]), torch.tensor([4, 5, 6])], 2), ([torch.tensor([1]), torch.tensor([2])], 0)]
    assert batch_groups(torch.tensor([[4, 5, 6], [4, 5, 6]]), torch.ones(2, 3, dtype=torch.long))[0][1] == 2
    rows = build_rows(pieces, pad_id=0)
    assert rows.segments[1].tolist() == [CHOSEN, REJECTED, PAD, PAD]
    ok = allowed(rows.segments)[1, 0]
    assert ok[1].tolist() == [False, True, False, False]  # rejected sees itself, not the chosen token
    assert ok[2].tolist() == [False, False, True, False]  # a padding query sees only itself: no row is empty


def pair(tiny_llama, attention: str, mode, **kwargs) -> tuple[RewardModel, RewardModel]:
    padded = RewardModel(Backbone(tiny_llama, attention=attention, **kwargs), score_init="normal")
    shared = RewardModel(Backbone(tiny_llama, attention=attention, **kwargs), forward_mode=mode)
    shared.load_state_dict(padded.state_dict())
    return padded, shared


def assert_same(padded: RewardModel, shared: RewardModel, ids, mask) -> None:
    r1, h1 = padded(ids, mask)
    r2, h2 = shared(ids, mask)
    torch.testing.assert_close(r2, r1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h2, h1, atol=1e-5, rtol=1e-5)
    r1.square().sum().backward()
    r2.square().sum().backward()
    grads = 0
    for (name, p1), p2 in zip(padded.named_parameters(), shared.parameters(), strict=True):
        if p1.grad is not None:
            grads += 1
            torch.testing.assert_close(p2.grad, p1.grad, atol=1e-4, rtol=1e-4, msg=name)
    assert grads > 0


@pytest.mark.parametrize("buckets", [1, 3])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_shared_prefix_equals_padded(tiny_llama, attention, side, buckets):
    padded, shared = pair(tiny_llama, attention, SharedPrefix(buckets))
    ids, mask = pair_batch(padded, side)
    assert_same(padded, shared, ids, mask)


def test_shared_prefix_computes_each_prompt_once(tiny_llama):
    model = RewardModel(Backbone(tiny_llama))
    ids, mask = pair_batch(model, "right")
    rows = build_rows(batch_groups(ids, mask), model.tokenizer.pad_token_id)
    # by hand from SHAPES: padded real tokens 20+11+25+16+6+14; laid out 14+11+14+13+5+10 (the last pair's chosen is
    # all prefix: its prefix is cut to 4 so that it keeps a token of its own)
    assert int(mask.sum()) == 92 and int(rows.segments.ne(PAD).sum()) == 67
    assert rows.computed == 6 * 14


def test_shared_prefix_under_lora(tiny_llama):
    padded, shared = pair(tiny_llama, "sdpa", SharedPrefix(2), lora=LoRA(r=4, alpha=8))
    ids, mask = pair_batch(padded, "left", seed=1)
    assert_same(padded, shared, ids, mask)


@pytest.mark.parametrize("regularizer", [BatchSumToZero(weight=0.1), HiddenNormVariance(weight=0.1)],
                         ids=["BatchSumToZero", "HiddenNormVariance"])
def test_regularizer_penalties_equal_padded(tiny_llama, regularizer):
    steps = []
    for mode in (Padded(), SharedPrefix()):
        torch.manual_seed(0)
        module = RewardModel(Backbone(tiny_llama), regularizer=regularizer, forward_mode=mode, score_init="normal")
        ids, mask = pair_batch(module, "right")
        steps.append(module.pair_step({"input_ids": ids, "attention_mask": mask}))
    assert steps[0]["values"]["penalty"].item() > 0
    for key in ("loss",):
        torch.testing.assert_close(steps[1][key], steps[0][key], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(steps[1]["values"]["penalty"], steps[0]["values"]["penalty"], atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(steps[1]["hidden_norms"], steps[0]["hidden_norms"], atol=1e-5, rtol=1e-5)


def test_flex_attention_block_mask_equals_padded(tiny_llama):
    """Forward only: torch has no FlexAttention backward on CPU (gpu_check.py runs the training step on a GPU)."""
    try:
        padded, shared = pair(tiny_llama, "flex_attention", SharedPrefix(2))
        ids, mask = pair_batch(padded, "right")
        with torch.no_grad():
            r2, h2 = shared(ids, mask)
    except Exception as err:  # torch builds without FlexAttention on this device
        pytest.skip(f"flex_attention unavailable here: {type(err).__name__}: {str(err)[:200]}")
    sdpa = RewardModel(Backbone(tiny_llama, attention="sdpa"))
    sdpa.load_state_dict(padded.state_dict())
    with torch.no_grad():
        r1, h1 = sdpa(ids, mask)
    torch.testing.assert_close(r2, r1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h2, h1, atol=1e-5, rtol=1e-5)


def test_encoders_and_unmaskable_attention_are_refused_with_what_to_use(tiny_bert):
    with pytest.raises(ConfigError, match="SharedPrefix needs a causal decoder.*LengthBuckets"):
        RewardModel(Backbone(tiny_bert), forward_mode=SharedPrefix())
    with pytest.raises(ConfigError, match="buckets >= 1"):
        SharedPrefix(0)


def test_fit_from_the_command_line_with_shared_prefix(synthetic_jsonl, tmp_path):
    from bsr_lightning.cli import cli_main

    cli = cli_main(["fit", "--model", "bsr_lightning.RewardModel", "--model.backbone.name", "tiny:synthetic",
                    "--model.forward_mode", "bsr_lightning.reward.forward.SharedPrefix",
                    "--model.forward_mode.buckets", "2", "--model.regularizer",
                    "bsr_lightning.reward.regularizers.BatchSumToZero", "--data", "bsr_lightning.PreferenceDataModule",
                    "--data.path", synthetic_jsonl, "--data.batch_size", "8", "--data.val_fraction", "0.25",
                    "--data.max_length", "128", "--trainer.max_steps", "3", "--trainer.accelerator", "cpu",
                    "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
                    "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--seed_everything", "0"])
    assert isinstance(cli.model.forward_mode, SharedPrefix) and cli.model.forward_mode.buckets == 2
    assert cli.trainer.global_step == 3
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss_step"])
    assert cli.trainer.callback_metrics["train/penalty_step"] > 0  # BSR on the shared-prefix rewards
