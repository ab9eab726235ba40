"""``evaluate --format rewardbench`` against RewardBench's own functions (from its PyPI wheel), and ``--format
rmbench`` against numbers derived by hand from the official RM-Bench ``compute_accuracy``."""

import math

import numpy as np
import pandas as pd
import pytest
from datasets import Dataset, DatasetDict

from bsr_lightning.evaluation.evaluate import stream_scores
from bsr_lightning.evaluation.rewardbench import RewardBenchEvaluator, iter_pref_sets
from bsr_lightning.evaluation.rmbench import RMBenchEvaluator
from conftest import write_jsonl
from upstream import constants, function


class NumberScorer:
    """Scores a conversation by its last message, which the fixtures write as a number."""

    def score_each(self, conversations, desc="", groups=None):
        return np.array([float(c[-1]["content"]) for c in conversations]), None, {}


def pair(subset: str, chosen: float, rejected: float, i: int) -> dict:
    return {"prompt": f"q{i}", "chosen": str(chosen), "rejected": str(rejected), "subset": subset, "id": i}


def core_rows() -> list[dict]:
    """Partial subsets whose observed counts differ from RewardBench's (alpacaeval-easy 3 rows for 100), a tie,
    every section present, math-prm and one code subset."""
    spec = {"alpacaeval-easy": [(1, 0), (1, 0), (0, 1)], "mt-bench-easy": [(0, 1)], "llmbar-natural": [(1, 0), (2, 2)],
            "donotanswer": [(1, 0), (0, 1), (0, 1), (0, 1)], "math-prm": [(1, 0)], "hep-python": [(0, 1), (1, 0)],
            "my-own-subset": [(1, 0)]}
    return [pair(subset, c, r, i) for subset, scores in spec.items() for i, (c, r) in enumerate(scores)]


def pref_sets() -> DatasetDict:
    """``allenai/pref-test-sets`` in miniature: anthropic_hhh's rows carry their own ``subset`` (RewardBench moves it
    to ``subsubset``), shp is absent, pku_better is retired."""

    def split(scores, own_subset=None):
        rows = [{"prompt": [{"role": "user", "content": f"q{i}"}], "chosen": str(c), "rejected": str(r)}
                for i, (c, r) in enumerate(scores)]
        if own_subset:
            rows = [{**row, "subset": own_subset[i]} for i, row in enumerate(rows)]
        return Dataset.from_list(rows)

    return DatasetDict({"anthropic_helpful": split([(1, 0), (0, 1)]),
                        "anthropic_hhh": split([(1, 0), (1, 0), (0, 1)], ["harmless", "helpful", "honest"]),
                        "summarize": split([(1, 0)]), "mtbench_human": split([(0, 1)]),
                        "pku_better": split([(1, 0), (1, 0)])})


def evaluate_rewardbench(tmp_path, rows) -> tuple[dict, list]:
    lines = []

    class Sink:
        def write(self, line):
            lines.append(line)

    return stream_scores(NumberScorer(), RewardBenchEvaluator(), iter(rows), Sink(), progress=False), lines


def upstream_results(rows) -> dict:
    """Per-subset accuracy as RewardBench's ``scripts/run_rm.py`` computes it (``1 if chosen > rejected else 0``)."""
    results: dict[str, list[int]] = {}
    for _, row in rows:
        if row["subset"] in ("pku_safer", "pku_better"):
            continue
        results.setdefault(row["subset"], []).append(1 if float(row["chosen"]) > float(row["rejected"]) else 0)
    return {subset: sum(r) / len(r) for subset, r in results.items()}


def test_sections_prior_sets_and_score_equal_rewardbench(tmp_path):
    rows = [(f"core.jsonl:{i + 1}", r) for i, r in enumerate(core_rows())] + list(iter_pref_sets(pref_sets()))
    metrics, _ = evaluate_rewardbench(tmp_path, rows)
    const = constants()
    accuracy = upstream_results(rows)
    sections = function("rewardbench/utils.py", "calculate_scores_per_section")(
        const["EXAMPLE_COUNTS"], const["SUBSET_MAPPING"], accuracy)
    for section, value in sections.items():
        assert metrics[section] == pytest.approx(value, abs=1e-12), section
    average = function("analysis/get_benchmark_results.py", "get_average_over_rewardbench",
                       {"np": np, "pd": pd, **const})
    df = pd.DataFrame([{"model": "m", "model_type": "Seq. Classifier", **accuracy}])
    prefs = pd.DataFrame([{"model": "m", **{s: accuracy.get(s, np.nan) for s in
                                            ("anthropic_helpful", "anthropic_hhh", "shp", "summarize")}}])
    board = average(df, prefs).iloc[0]
    assert metrics["Prior Sets"] == pytest.approx(board["Prior Sets (0.5 weight)"], abs=1e-12)
    assert metrics["Score"] == pytest.approx(board["average"], abs=1e-12)
    # the differences the upstream functions pin down
    assert metrics["Chat"] != pytest.approx(2 / 4)  # observed-count weighting would give 2/4
    assert metrics["per_subset"]["anthropic_hhh"] == pytest.approx(2 / 3)  # grouped by split, not by own subset
    assert metrics["retired_rows_left_out"] == {"pku_better": 2}
    assert metrics["pairs"] == len(rows) - 2


def test_an_empty_section_scores_zero_as_in_rewardbench(tmp_path):
    rows = [(f"core.jsonl:{i + 1}", r) for i, r in enumerate(core_rows()) if r["subset"] != "donotanswer"]
    metrics, _ = evaluate_rewardbench(tmp_path, rows)
    const = constants()
    sections = function("rewardbench/utils.py", "calculate_scores_per_section")(
        const["EXAMPLE_COUNTS"], const["SUBSET_MAPPING"], upstream_results(rows))
    assert sections["Safety"] == 0 and metrics["Safety"] == 0.0
    assert metrics["Score"] == pytest.approx(2 * sum(sections.values()) / 8)  # no prior sets: the 4 sections


def test_our_constants_are_rewardbench_constants():
    from bsr_lightning.evaluation import rewardbench

    const = constants()
    assert rewardbench.EXAMPLE_COUNTS == const["EXAMPLE_COUNTS"]
    assert rewardbench.SECTIONS == const["SUBSET_MAPPING"]


def test_rewardbench_defaults_to_the_filtered_split_and_2048_tokens(monkeypatch):
    from bsr_lightning.evaluation import rewardbench

    seen = []
    monkeypatch.setattr(rewardbench, "iter_raw_rows", lambda path, split: seen.append((path, split)) or iter(()))
    evaluator = RewardBenchEvaluator()
    list(evaluator.rows("allenai/reward-bench", evaluator.default_split))
    assert seen == [("allenai/reward-bench", "filtered")] and evaluator.default_max_length == 2048


# ---------------------------------------------------------------------------------------------------------------
# RM-Bench. The official compute_accuracy (THU-KEG/RM-Bench scripts/utils.py) is not on PyPI; the expected numbers
# below are derived by hand from its definition (see bsr_lightning.evaluation.rmbench).


def rm_item(i, chosen, rejected, domain=None):
    row = {"id": i, "prompt": f"p{i}", "chosen": [str(x) for x in chosen], "rejected": [str(x) for x in rejected]}
    return row if domain is None else {**row, "domain": domain}


def rmbench(tmp_path, files: dict[str, list[dict]]) -> dict:
    data = ",".join(write_jsonl(tmp_path / name, rows) for name, rows in files.items())
    evaluator = RMBenchEvaluator(data)

    class Sink:
        def write(self, line):
            pass

    return stream_scores(NumberScorer(), evaluator, evaluator.rows(data, "train"), Sink(), progress=False)


def test_rmbench_matches_the_official_definition_by_hand(tmp_path):
    # chat: item 0 chosen [3,2,1] vs rejected [0,2.5,1.5] -> rows of wins [1,1,1], [1,0,1], [1,0,0];
    #       item 1 chosen [1,1,1] vs rejected [0,0,2]   -> [1,1,0] in every row.
    #   M = [[2,2,1],[2,1,1],[2,1,0]] / 2 -> hard (above the diagonal) = (1+0.5+0.5)/3 = 2/3,
    #   normal (diagonal) = (1+0.5+0)/3 = 1/2, easy (below) = (1+1+0.5)/3 = 5/6; average = 2/3
    chat = [rm_item(0, [3, 2, 1], [0, 2.5, 1.5], "chat"), rm_item(1, [1, 1, 1], [0, 0, 2], "chat")]
    # safety: safety-refuse [1,1,1] vs [0,0,0] (all 9 right) and safety-response [0,0,0] vs [1,1,1] (none), pooled:
    #   M = 0.5 everywhere -> hard = normal = easy = average = 0.5
    safety_refuse = [rm_item(2, [1, 1, 1], [0, 0, 0])]
    safety_response = [rm_item(3, [0, 0, 0], [1, 1, 1])]
    # a tie [1,1,1] vs [1,1,1] is wrong (strict >): math all 0; "reasoning" is not an RM-Bench domain: left out
    other = [rm_item(4, [1, 1, 1], [1, 1, 1], "math"), rm_item(5, [9, 9, 9], [0, 0, 0], "reasoning")]
    metrics = rmbench(tmp_path, {"chat.jsonl": chat, "safety-refuse.jsonl": safety_refuse,
                                 "safety-response.jsonl": safety_response, "mixed.jsonl": other})
    chat_m, safety_m, math_m = (metrics["domains"][d] for d in ("chat", "safety", "math"))
    assert (chat_m["hard"], chat_m["normal"], chat_m["easy"]) == pytest.approx((2 / 3, 1 / 2, 5 / 6))
    assert chat_m["average"] == pytest.approx(2 / 3)
    assert safety_m["items"] == 2 and safety_m["average"] == pytest.approx(0.5)
    assert math_m["average"] == 0.0
    assert metrics["hard"] == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert metrics["normal"] == pytest.approx((1 / 2 + 0.5 + 0) / 3)
    assert metrics["average"] == pytest.approx((2 / 3 + 0.5 + 0) / 3)  # the official total_avg_acc
    assert metrics["unknown_domain_rows_left_out"] == {"reasoning": 1} and metrics["items"] == 5
    assert metrics["missing_domains"] == ["code"]


def test_rmbench_row_without_domain_in_an_unnamed_file_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"data\.jsonl:1: no 'domain' column"):
        rmbench(tmp_path, {"data.jsonl": [rm_item(0, [1, 1, 1], [0, 0, 0])]})


def test_rmbench_with_no_known_domain_reports_nan_not_a_crash(tmp_path):
    metrics = rmbench(tmp_path, {"x.jsonl": [rm_item(0, [1, 1, 1], [0, 0, 0], "poetry")]})
    assert math.isnan(metrics["average"]) and metrics["missing_domains"] == ["chat", "code", "math", "safety"]
