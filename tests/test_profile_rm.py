"""scripts/profile_rm.py: the profiled window covers exactly the optimizer steps asked for, on the project's row and
on TRL's (built by the same bench_rows code the benchmark times), and its report is hand-checkable."""

import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import REPO, load_script


@pytest.fixture(scope="module")
def profile_rm():
    return load_script("profile_rm")


class FakeProfiler:
    """Records the optimizer step at which the window starts and stops it."""

    def __init__(self) -> None:
        self.calls, self.window = [], None

    def start(self) -> None:
        self.calls.append(("start", self.window.step))

    def stop(self) -> None:
        self.calls.append(("stop", self.window.step))


def args_for(data: str, **overrides) -> SimpleNamespace:
    return SimpleNamespace(data=data, batch_size=4, max_length=256, lr=5e-5, seed=0, buckets=2, decoder_buckets=2,
                           max_pairs=None, decoder_max_pairs=None, decoder_max_length=256, decoder_lr=5e-5,
                           decoder_val_fraction=0.25, no_fused=False, **overrides)


def window_over(profile_rm, row, warmup: int, steps: int):
    from bench_decoder import ComputedTokens

    profiler = FakeProfiler()
    profiler.window = window = profile_rm.Window(profiler, ComputedTokens(row.model), warmup, steps)
    profile_rm.train_with(row, window)
    return window, profiler


def test_the_window_starts_after_the_warmup_steps_and_ends_after_steps_more(profile_rm, tiny_bert, synthetic_jsonl):
    rows = load_script("bench_rows")
    row = rows.project_row(args_for(synthetic_jsonl), tiny_bert, "fp32", grouped=False, mode="buckets", max_steps=5)
    window, profiler = window_over(profile_rm, row, warmup=2, steps=3)
    assert profiler.calls == [("start", 2), ("stop", 5)] and window.step == 5
    # 3 steps of 4 pairs, 8 sequences each, at least 2 tokens long, all counted by the transformer's pre-hook
    assert window.seconds > 0 and window.tokens >= 3 * 8 * 2


def test_trl_rows_are_profiled_over_the_same_window(profile_rm, tiny_bert, synthetic_jsonl, tmp_path):
    pytest.importorskip("trl")
    rows = load_script("bench_rows")
    row = rows.trl_row(args_for(synthetic_jsonl), tiny_bert, str(tmp_path), "fp32", grouped=True, max_steps=4)
    window, profiler = window_over(profile_rm, row, warmup=1, steps=3)
    assert profiler.calls == [("start", 1), ("stop", 4)] and window.tokens >= 3 * 8 * 2


def test_report_by_hand(profile_rm):
    event = lambda key, us, count: SimpleNamespace(key=key, self_cpu_time_total=us, count=count)  # noqa: E731
    events = [event("aten::fill_", 100, 5), event("aten::mm", 600, 3), event("Optimizer.step#AdamW.step", 300, 1)]
    window = SimpleNamespace(steps=2, seconds=0.5, tokens=1000)
    out = profile_rm.report(events, window, batch_size=4, top=2)
    assert out["pairs_per_s"] == 16.0 and out["computed_tokens_per_s"] == 2000.0 and out["seconds_per_step"] == 0.25
    assert (out["share_matmul"], out["share_optimizer"], out["share_other"]) == (0.6, 0.3, 0.1)
    assert out["top"] == [{"op": "aten::mm", "ms_per_step": 0.3, "calls_per_step": 1.5},
                          {"op": "Optimizer.step#AdamW.step", "ms_per_step": 0.15, "calls_per_step": 0.5}]


@pytest.mark.parametrize("argv, message", [([], "--row is required"),
                                           (["--row", "project-fp32", "--steps", "0"], "at least 1")])
def test_bad_arguments_exit_2_with_one_message(argv, message):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "profile_rm.py"), *argv], capture_output=True,
                            text=True)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
