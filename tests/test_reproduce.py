"""The reproduction's decision rule (scripts/reproduce_report.py) by hand, and the generated task's generators."""

import statistics
import sys

import pytest

from bsr_lightning.synthetic_task import GENERATORS, generator_response_table
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from reproduce_report import paired  # noqa: E402


def test_paired_difference_ci_and_verdict_by_hand():
    # d = [1, 2, 3]: mean 2, sd 1, se 1/sqrt(3) = 0.57735, t(0.975, 2) = 4.303 -> half-width 2.48434
    p = paired([1, 2, 3], [0, 0, 0], "higher")
    assert p["mean"] == 2 and p["se"] == pytest.approx(0.5774, abs=1e-4)
    assert p["ci95"] == pytest.approx([-0.4843, 4.4843], abs=1e-4) and p["verdict"] == "no effect"
    # d = [0.9, 1.0, 1.1, 1.0, 1.0]: mean 1, sd 0.070711, se 0.031623, t(4) = 2.776 -> [0.9122, 1.0878]
    bsr, bt = [1.9, 2.0, 2.1, 2.0, 2.0], [1.0] * 5
    assert paired(bsr, bt, "higher")["ci95"] == pytest.approx([0.9122, 1.0878], abs=1e-4)
    assert paired(bsr, bt, "higher")["verdict"] == "support"
    assert paired(bsr, bt, "lower")["verdict"] == "contradiction"
    assert paired(bt, bsr, "lower")["verdict"] == "support"


def test_generators_answer_differently_and_the_table_is_deterministic():
    rows = generator_response_table(per_generator=3, seed=0)
    assert rows == generator_response_table(per_generator=3, seed=0)
    assert len(rows) == 96 * len(GENERATORS) * 3
    words = {g: statistics.mean(len(r["response"].split()) for r in rows if r["generator"] == g) for g in GENERATORS}
    gold = {g: statistics.mean(r["score"] for r in rows if r["generator"] == g) for g in GENERATORS}
    assert words["verbose"] > 2 * words["terse"]  # fillers and tips
    assert gold["helpful"] > gold["careless"] + 1  # tone and focus
    for (prompt, generator) in {(r["prompt"], r["generator"]) for r in rows}:
        texts = [r["response"] for r in rows if r["prompt"] == prompt and r["generator"] == generator]
        assert len(set(texts)) == 3
