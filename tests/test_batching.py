"""Padding-free packing and length buckets give the padded path's rewards, hidden states and gradients."""

import shutil

import pytest
import torch

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.data.collate import pad_sequences
from bsr_lightning.reward.forward import LengthBuckets, Packed, Padded


def batch(model, lengths, side):
    torch.manual_seed(0)
    seqs = [torch.randint(10, 300, (n,)).numpy() for n in lengths]
    return pad_sequences(seqs, model.tokenizer.pad_token_id, side)


@pytest.mark.parametrize("batching", [Packed(), LengthBuckets(2), LengthBuckets(8)],
                         ids=["Packed", "LengthBuckets(2)", "LengthBuckets(8)"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_decoder_batchings_equal_padded(tiny_llama, batching, side):
    padded = RewardModel(Backbone(tiny_llama), score_init="normal")
    other = RewardModel(Backbone(tiny_llama), forward_mode=batching)
    other.load_state_dict(padded.state_dict())
    ids, mask = batch(padded, [5, 17, 9, 30, 2, 12], side)
    r1, h1 = padded(ids, mask)
    r2, h2 = other(ids, mask)
    assert torch.allclose(r1, r2, atol=1e-5) and torch.allclose(h1, h2, atol=1e-5)
    r1.square().sum().backward()
    r2.square().sum().backward()
    for (name, p1), p2 in zip(padded.named_parameters(), other.parameters(), strict=True):
        assert torch.allclose(p1.grad, p2.grad, atol=1e-4, rtol=1e-4), name


def test_encoder_buckets_equal_padded_and_packing_is_refused(tiny_bert):
    padded = RewardModel(Backbone(tiny_bert), score_init="normal")
    buckets = RewardModel(Backbone(tiny_bert), forward_mode=LengthBuckets(3))
    buckets.load_state_dict(padded.state_dict())
    ids, mask = batch(padded, [5, 17, 9, 30, 2, 12], "right")
    assert torch.allclose(padded.score(ids, mask), buckets.score(ids, mask), atol=1e-5)
    with pytest.raises(ValueError, match="Packed forward needs a decoder.*LengthBuckets for encoders"):
        RewardModel(Backbone(tiny_bert), forward_mode=Packed())


def test_packed_training_step_matches_padded(tiny_llama, synthetic_jsonl):
    from bsr_lightning import PreferenceDataModule

    data = PreferenceDataModule(path=synthetic_jsonl, tokenizer=tiny_llama, batch_size=6, max_length=128)
    data.setup("fit")
    pairs = next(iter(data.train_dataloader()))
    losses = []
    for batching in (Padded(), Packed()):
        torch.manual_seed(0)
        module = RewardModel(Backbone(tiny_llama), forward_mode=batching, score_init="normal")
        losses.append(module.pair_step(pairs)["loss"])
    assert losses[0].item() == pytest.approx(losses[1].item(), abs=1e-6)


@pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("cc")), reason="torch.compile on CPU needs a C compiler")
def test_forward_mode_is_stored_as_plain_data_and_compile_keeps_names_and_scores(tiny_llama):
    module = RewardModel(Backbone(tiny_llama), forward_mode=LengthBuckets(3), compile=True, score_init="normal")
    assert module.hparams.forward_mode == {"class_path": "bsr_lightning.reward.forward.LengthBuckets",
                                       "init_args": {"buckets": 3}}
    names = set(module.state_dict())
    ids, mask = batch(module, [5, 17, 9], "left")
    eager = module.score(ids, mask)
    module.configure_model()  # torch.compile, in place
    assert set(module.state_dict()) == names
    assert torch.allclose(module.score(ids, mask), eager, atol=1e-5)
