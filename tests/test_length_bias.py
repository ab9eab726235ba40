"""``length_bias`` on the generated preference task (issue 35): labels that follow length at a known rate, the gold
reward and every pair unchanged, held-out pairs gold-labelled."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from bsr_lightning.data.synthetic import SyntheticPreferenceDataModule
from bsr_lightning.errors import ConfigError
from bsr_lightning.synthetic_task import generate_preference_rows, gold_reward, words


def fingerprint(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def test_default_rows_are_the_rows_the_task_always_gave():
    """Pinned from the task before ``length_bias`` existed (commit aef4686): every earlier result stays valid."""
    for seed, expected in ((0, "05bdbe65a02ca0aa1e50404bcebfb6414d45c85ea9c3812d93685b9de98abaa1"),
                           (100_003, "4516e3ef037b395e6cc1d6c1f7f2a5f6760a79a276aa2b3f9507beff209e0c01")):
        rows = generate_preference_rows(200, seed)
        assert {r.pop("label") for r in rows} == {"gold"}
        assert fingerprint(rows) == expected


def test_bias_flips_labels_of_the_same_pairs():
    plain, biased = generate_preference_rows(500, 3), generate_preference_rows(500, 3, length_bias=0.5)
    assert [(r["prompt"], {r["chosen"], r["rejected"]}) for r in plain] == \
           [(r["prompt"], {r["chosen"], r["rejected"]}) for r in biased]
    for row in biased:  # the gold reward travels with its response
        assert row["chosen_gold"] == gold_reward(row["prompt"], row["chosen"])
        assert row["rejected_gold"] == gold_reward(row["prompt"], row["rejected"])


def test_realized_fraction_and_gold_accuracy():
    n, bias = 4000, 0.3
    rows = generate_preference_rows(n, 11, length_bias=bias)
    unequal = sum(words(r["chosen"]) != words(r["rejected"]) for r in rows) / n
    by_length = [r for r in rows if r["label"] == "length"]
    expected = bias * unequal  # only pairs whose lengths differ can be decided by length
    assert abs(len(by_length) / n - expected) < 4 * math.sqrt(expected * (1 - expected) / n)
    assert all(words(r["chosen"]) > words(r["rejected"]) for r in by_length)
    assert all(r["chosen_gold"] > r["rejected_gold"] for r in rows if r["label"] == "gold")
    against_gold = sum(r["chosen_gold"] < r["rejected_gold"] for r in by_length)
    gold_accuracy = sum(r["chosen_gold"] > r["rejected_gold"] for r in rows) / n
    assert gold_accuracy == pytest.approx(1 - against_gold / n)
    assert 0.5 < gold_accuracy < 1.0  # length and gold disagree on some pairs: the bias costs gold accuracy


def test_full_bias_labels_every_unequal_pair_by_length():
    rows = generate_preference_rows(300, 5, length_bias=1.0)
    for row in rows:
        if words(row["chosen"]) != words(row["rejected"]):
            assert row["label"] == "length" and words(row["chosen"]) > words(row["rejected"])
        else:
            assert row["label"] == "gold"


def test_lengths_differ_enough_for_the_bias_to_matter():
    rows = generate_preference_rows(2000, 0)
    lengths = [words(r[side]) for r in rows for side in ("chosen", "rejected")]
    gaps = [abs(words(r["chosen"]) - words(r["rejected"])) for r in rows]
    assert min(lengths) <= 5 and max(lengths) >= 40
    assert sum(g >= 10 for g in gaps) / len(gaps) > 0.3


def test_datamodule_biases_training_labels_only():
    data = SyntheticPreferenceDataModule(num_pairs=400, num_val_pairs=200, length_bias=1.0, tokenizer="tiny:synthetic")
    train, val = data.read_pairs("train"), data.read_pairs("val")
    assert sum(words(p.chosen[-1]["content"]) > words(p.rejected[-1]["content"]) for p in train) / len(train) > 0.85
    for pair, row in zip(val, generate_preference_rows(200, data.hparams.seed + 100_003), strict=True):
        assert pair.chosen[-1]["content"] == row["chosen"]  # gold-labelled, as without the bias


@pytest.mark.parametrize("bias", [-0.1, 1.5])
def test_bad_bias_is_a_config_error(bias):
    with pytest.raises(ConfigError, match="data.length_bias"):
        SyntheticPreferenceDataModule(length_bias=bias)
    with pytest.raises(ValueError, match="length_bias"):
        generate_preference_rows(3, 0, length_bias=bias)
