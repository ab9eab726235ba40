"""scripts/bench_rm.py's row planning: bf16 rows run only with native bf16 (or when forced), each skip says why, and
the decoder summary compares the project's random-batch rows with TRL's."""

from types import SimpleNamespace

import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_rm")


@pytest.mark.parametrize("native, flag, runs_bf16", [(False, "auto", False), (True, "auto", True),
                                                     (False, "on", True), (True, "off", False)])
def test_bf16_rows_follow_the_cpu_unless_forced(bench, monkeypatch, native, flag, runs_bf16):
    monkeypatch.setattr(bench, "native_bf16", lambda: native)
    rows = ["project-fp32", "project-bf16", "trl-bf16-grouped", "decoder-project-shared-random"]
    kept, skipped = bench.planned_rows(rows, flag, decoder_precision="bf16")
    bf16_rows = {"project-bf16", "trl-bf16-grouped", "decoder-project-shared-random"}  # the decoder in bf16 here
    assert set(kept) == (set(rows) if runs_bf16 else set(rows) - bf16_rows)
    assert set(skipped) == (set() if runs_bf16 else bf16_rows) and all("native bf16" in why for why in skipped.values())
    assert bench.planned_rows(rows, flag, decoder_precision="fp32")[0][-1] == "decoder-project-shared-random"


def test_the_decoder_summary_is_the_fastest_random_project_row_against_trl(bench):
    means = [{"row": "decoder-trl-grouped", "pairs_per_s": 5.0}, {"row": "decoder-project-padded-random",
                                                                  "pairs_per_s": 3.0},
             {"row": "decoder-project-shared-random", "pairs_per_s": 8.0}]
    best = bench.best_of(means, ("decoder-project", "decoder-trl"))
    assert best["decoder-project"]["row"] == "decoder-project-shared-random" and best["ratio_pairs_per_s"] == 1.6


def test_encoder_rows_take_buckets_and_the_shared_prefix_rows_take_decoder_buckets():
    forward_mode = load_script("bench_rows").forward_mode
    args = SimpleNamespace(buckets=8, decoder_buckets=3)
    assert type(forward_mode(args, "buckets")).__name__ == "LengthBuckets"
    assert forward_mode(args, "buckets").buckets == 8 and forward_mode(args, "shared").buckets == 3
    assert {type(forward_mode(args, name)).__name__ for name in ("padded", "packed")} == {"Padded", "Packed"}
