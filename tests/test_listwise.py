"""Listwise reward training (issue 33, part 4): rows of one prompt with k >= 2 scored responses, each row one group
in the batch. ``AllPairs`` with Bradley-Terry equals training on the binarized pairs; ``PlackettLuce`` by hand; BSR
sees every response once; ``SharedPrefix`` takes each row's prompt once; the three row shapes; and ``fit`` end to
end."""

import math

import pytest
import torch

from bsr_lightning import Backbone, ListwiseDataModule, ListwiseRewardModel, RewardModel
from bsr_lightning.cli import cli_main
from bsr_lightning.data.collate import pad_sequences
from bsr_lightning.data.formats import RowError
from bsr_lightning.data.listwise import row_to_set
from bsr_lightning.reward.forward import SharedPrefix
from bsr_lightning.reward.listwise import GroupOutputs, PlackettLuce, ordered_pairs
from bsr_lightning.reward.regularizers import BatchSumToZero
from conftest import write_jsonl

ROWS = [{"prompt": f"How do I start {topic}?", "responses": ["Practice daily.", "no", f"Find a {topic} club.",
                                                             "Read a book first."],
         "scores": [0.9, 0.1, 0.7, 0.7]} for topic in ("chess", "baking", "running")]


def batch_of(model, rows: list[dict]) -> dict:
    data = ListwiseDataModule(path="unused", batch_size=len(rows), val_fraction=0.0, max_length=128)
    data.tokenizer = model.tokenizer
    from bsr_lightning.data.encoding import PairEncoder
    from bsr_lightning.data.listwise import encode_sets

    sets = [row_to_set(row, i, f"row {i}") for i, row in enumerate(rows)]
    dataset, _ = encode_sets(PairEncoder(model.tokenizer, 128, "drop"), sets, "train")
    return data.collator()([dataset[i] for i in range(len(dataset))])


def binarized(model, batch: dict) -> dict:
    """The same responses as a pair batch: every ordered pair with a score gap, chosen rows first."""
    better, worse = ordered_pairs(batch["scores"], batch["group_sizes"])
    seqs = [batch["input_ids"][i][batch["attention_mask"][i].bool()].numpy() for i in torch.cat([better, worse])]
    ids, mask = pad_sequences(seqs, model.tokenizer.pad_token_id, model.tokenizer.padding_side)
    return {"input_ids": ids, "attention_mask": mask}


def test_all_pairs_equals_training_on_the_binarized_pairs(tiny_llama):
    torch.manual_seed(0)
    listwise = ListwiseRewardModel(Backbone(tiny_llama), score_init="normal")
    pairs = RewardModel(Backbone(tiny_llama))
    pairs.load_state_dict(listwise.state_dict())
    batch = batch_of(listwise, ROWS)
    assert batch["group_sizes"].tolist() == [4, 4, 4]
    ours, theirs = listwise.pair_step(batch), pairs.pair_step(binarized(pairs, batch))
    assert len(ordered_pairs(batch["scores"], batch["group_sizes"])[0]) == 3 * 5  # 6 pairs, one tie, per row
    torch.testing.assert_close(ours["loss"], theirs["loss"], atol=1e-6, rtol=1e-6)
    ours["loss"].backward()
    theirs["loss"].backward()
    for (name, a), b in zip(listwise.named_parameters(), pairs.parameters(), strict=True):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_plackett_luce_by_hand():
    # one group, scores ranking the rewards [2, 0, 1] as 2 > 1 > 0: -[2 - lse(2, 1, 0)] - [1 - lse(1, 0)]
    rewards = torch.tensor([2.0, 0.0, 1.0])
    out = GroupOutputs(rewards[:0], rewards[:0], None, None, rewards, None, torch.tensor([3.0, 1.0, 2.0]),
                       torch.tensor([3]))
    lse = math.log
    expected = -(2 - lse(math.e**2 + math.e + 1)) - (1 - lse(math.e + 1))
    assert PlackettLuce()(out, None).item() == pytest.approx(expected, abs=1e-6)


def test_bsr_sees_every_response_once(tiny_llama):
    torch.manual_seed(0)
    model = ListwiseRewardModel(Backbone(tiny_llama), regularizer=BatchSumToZero(0.1, scale="batch"),
                                score_init="normal")
    batch = batch_of(model, ROWS)
    out = model.pair_outputs(batch)
    rewards = out.rewards.detach()
    assert rewards.shape == (12,)  # 12 responses, not the 30 rewards of the 15 pairs
    assert model.regularizer.penalty(out).item() == pytest.approx(0.1 * 6 * rewards.mean().item() ** 2, rel=1e-5)


def test_shared_prefix_takes_each_rows_prompt_once(tiny_llama):
    torch.manual_seed(0)
    padded = ListwiseRewardModel(Backbone(tiny_llama), score_init="normal")
    shared = ListwiseRewardModel(Backbone(tiny_llama), forward_mode=SharedPrefix())
    shared.load_state_dict(padded.state_dict())
    batch = batch_of(padded, ROWS)
    torch.testing.assert_close(shared.pair_step(batch)["loss"], padded.pair_step(batch)["loss"], atol=1e-5,
                               rtol=1e-5)


def test_the_three_row_shapes_read_alike():
    plain = row_to_set(ROWS[0], 0, "row 0")
    paper = row_to_set({"instruction": ROWS[0]["prompt"], **{f"response_{i + 1}_text": r for i, r in
                                                             enumerate(ROWS[0]["responses"])},
                        "all_scores": ROWS[0]["scores"]}, 0, "row 0")
    ultra = row_to_set({"prompt": ROWS[0]["prompt"], "completions": [
        {"response": r, "score": s} for r, s in zip(ROWS[0]["responses"], ROWS[0]["scores"], strict=True)]},
        0, "row 0")
    assert plain == paper == ultra
    with pytest.raises(RowError, match="same score"):
        row_to_set({**ROWS[0], "scores": [1, 1, 1, 1]}, 0, "row 0")


def test_fit_trains_and_exports_on_listwise_rows(tiny_llama, tmp_path):
    data = write_jsonl(tmp_path / "sets.jsonl", ROWS * 4)
    cli_main(["fit", "--model", "bsr_lightning.ListwiseRewardModel", "--model.backbone.name", tiny_llama,
              "--model.regularizer", "bsr_lightning.reward.regularizers.BatchSumToZero",
              "--model.listwise_loss", "bsr_lightning.reward.listwise.PlackettLuce",
              "--data", "bsr_lightning.ListwiseDataModule", "--data.path", data, "--data.batch_size", "2",
              "--data.val_fraction", "0.25", "--data.max_length", "128", "--trainer.max_steps", "3",
              "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path / "run"),
              "--trainer.enable_progress_bar", "false"])
    checkpoint = next((tmp_path / "run").rglob("*.ckpt"))
    cli_main(["export", "--ckpt_path", str(checkpoint), "--output_dir", str(tmp_path / "export")])
    assert (tmp_path / "export" / "model.safetensors").is_file()  # the checkpoint names ListwiseRewardModel
    metrics = (next((tmp_path / "run").rglob("metrics.csv"))).read_text()
    assert "train/accuracy" in metrics and "train/penalty" in metrics and "train/reward_length_corr" in metrics
