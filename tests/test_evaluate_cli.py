"""``python -m bsr_lightning evaluate`` on an exported tiny model, for every format."""

import json

import numpy as np
import pytest

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.backbones.export import export_module
from bsr_lightning.cli import cli_main
from conftest import write_jsonl


@pytest.fixture(scope="module")
def exported(tiny_llama, tmp_path_factory) -> str:
    module = RewardModel(Backbone(tiny_llama), score_init="normal")
    return str(export_module(module, tmp_path_factory.mktemp("rm") / "export"))


def run(exported, data, fmt, out, *extra):
    cli_main(["evaluate", "--model", exported, "--data", data, "--format", fmt, "--output_dir", str(out), *extra])
    metrics = json.loads((out / "metrics.json").read_text())
    records = [json.loads(line) for line in open(out / "scores.jsonl")]
    assert (out / "report.md").read_text().startswith(f"# {fmt} evaluation")
    return metrics, records


def test_pairs_accuracy_subsets_and_batch_size_invariance(exported, tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "Happy to help! " * (i % 4 + 1), "rejected": "no " * (i % 3 + 1),
             "subset": "alpacaeval-easy" if i % 2 else "donotanswer"} for i in range(10)]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    m1, r1 = run(exported, data, "pairs", tmp_path / "bs1", "--batch_size", "1")
    m7, r7 = run(exported, data, "pairs", tmp_path / "bs7", "--batch_size", "7")
    assert [r["row"] for r in r1] == list(range(10))
    assert np.allclose([r["chosen"] for r in r1], [r["chosen"] for r in r7], atol=1e-5)
    correct = np.array([r["chosen"] > r["rejected"] for r in r1])
    assert m1["accuracy"] == pytest.approx(correct.mean())
    assert m1["per_subset"]["donotanswer"] == pytest.approx(correct[::2].mean())


def test_multi_kendall_matches_scores(exported, tmp_path):
    from bsr_lightning.evaluation.metrics import kendall_tau_b

    rows = [{"prompt": "How do I start chess?", "responses": ["a", "Start with small steps.", "no", "chess!"],
             "scores": [0.0, 2.0, -1.0, 1.0]},
            {"prompt": "Tips for tea?", "responses": ["x", "y"], "scores": [1.0, 2.0]}]
    metrics, records = run(exported, write_jsonl(tmp_path / "multi.jsonl", rows), "multi", tmp_path / "out")
    taus = [kendall_tau_b(r["scores"], r["gold"]) for r in records]
    assert metrics["kendall_tau"] == pytest.approx(np.mean(taus)) and metrics["prompts"] == 2


def test_rmbench_domains_merge_safety(exported, tmp_path):
    def item(i, domain):
        return {"id": i, "prompt": f"p{i}", "domain": domain, "chosen": ["good", "good detailed", "**good**"],
                "rejected": ["bad", "bad detailed", "**bad**"]}

    rows = [item(0, "chat"), item(1, "safety-refuse"), item(2, "safety-response")]
    metrics, records = run(exported, write_jsonl(tmp_path / "rmbench.jsonl", rows), "rmbench", tmp_path / "out")
    assert set(metrics["domains"]) == {"chat", "safety"} and metrics["domains"]["safety"]["items"] == 2
    assert metrics["hard"] == pytest.approx(np.mean([d["hard"] for d in metrics["domains"].values()]))
    assert len(records[0]["chosen"]) == 3


def test_bad_multi_row_names_its_line(exported, tmp_path):
    rows = [{"prompt": "p", "responses": ["a", "b"], "scores": [1.0, 2.0]},
            {"prompt": "p", "responses": ["a"], "scores": [1.0, 2.0]}]
    with pytest.raises(ValueError, match=r"multi\.jsonl:2: the responses and their gold scores"):
        run(exported, write_jsonl(tmp_path / "multi.jsonl", rows), "multi", tmp_path / "out")


def test_effective_rank_by_hand():
    from bsr_lightning.evaluation.diagnostics import effective_rank

    assert effective_rank(np.eye(4)) == pytest.approx(4.0)  # equal singular values: entropy log 4
    assert effective_rank(np.outer(np.arange(1, 6), np.ones(3))) == pytest.approx(1.0)


def test_diagnose_overlays_two_models_into_pngs(exported, tiny_llama, tmp_path, synthetic_jsonl):
    other = str(export_module(RewardModel(Backbone(tiny_llama)), tmp_path / "other"))
    out = tmp_path / "diag"
    summary = cli_main(["diagnose", "--models", f"[{exported}, {other}]", "--labels", "[BT, BSR]", "--data",
                        synthetic_jsonl, "--output_dir", str(out), "--max_pairs", "20"])
    assert set(summary) == {"BT", "BSR"} and summary["BT"]["hidden_norm_mean"] > 0
    assert -1.0 <= summary["BSR"]["cos_h_w_mean"] <= 1.0 and 1.0 <= summary["BT"]["effective_rank"] <= 32
    for name in ("hidden_norm", "pair_hidden_distance", "cos_h_w", "reward", "reward_vs_length"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert -1.0 <= summary["BT"]["reward_length_spearman"] <= 1.0 and summary["BT"]["response_tokens_mean"] > 0
    assert "## BSR" in (out / "diagnostics.md").read_text()


def test_benchmark_max_length_is_cut_to_the_model_positions(tiny_bert, tmp_path):
    from bsr_lightning.errors import ConfigError

    module = RewardModel(Backbone(tiny_bert))  # 256 positions
    model = str(export_module(module, tmp_path / "export"))
    rows = [{"id": 0, "prompt": "p", "domain": "chat", "chosen": ["a", "b", "c"], "rejected": ["d", "e", "f"]}]
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    metrics, _ = run(model, data, "rmbench", tmp_path / "out")  # RM-Bench's 2048 would overflow the positions
    assert metrics["length_policy"]["max_length"] == 256
    with pytest.raises(ConfigError, match="max_length: 1024 is more than the model's 256 positions"):
        run(model, data, "rmbench", tmp_path / "out2", "--max_length", "1024")


def test_the_papers_validation_format_is_read_as_it_stands(exported, tmp_path):
    """Rows of the paper's released Val2-Val4 sets: ``response_1_text`` .. ``response_4_text`` and ``all_scores``;
    the same sets as ``responses``/``scores`` rows give the same scores and tau."""
    texts = [["Start with small steps.", "no", "chess!", "Learn the moves first."],
             ["Steep three minutes.", "x", "Tea is a drink.", "Use fresh water."]]
    gold = [[2.0, -1.0, 1.0, 3.0], [3.0, 0.0, 1.0, 2.0]]
    paper = [{"prompt": p, **{f"response_{k + 1}_text": t for k, t in enumerate(ts)}, "all_scores": g}
             for p, ts, g in zip(["How do I start chess?", "Tips for tea?"], texts, gold, strict=True)]
    ours = [{"prompt": row["prompt"], "responses": ts, "scores": g} for row, ts, g in zip(paper, texts, gold,
                                                                                        strict=True)]
    m_paper, r_paper = run(exported, write_jsonl(tmp_path / "paper.jsonl", paper), "multi", tmp_path / "a")
    m_ours, r_ours = run(exported, write_jsonl(tmp_path / "ours.jsonl", ours), "multi", tmp_path / "b")
    assert m_paper["prompts"] == 2 and [len(r["scores"]) for r in r_paper] == [4, 4]
    assert [r["scores"] for r in r_paper] == [r["scores"] for r in r_ours] and m_paper == m_ours


def test_metrics_json_is_strict_json_with_null_for_undefined_metrics(exported, tmp_path):
    rows = [{"prompt": "p", "chosen": "good answer", "rejected": "bad", "subset": "alpacaeval-easy"}]
    metrics, _ = run(exported, write_jsonl(tmp_path / "rb.jsonl", rows), "rewardbench", tmp_path / "out")
    text = (tmp_path / "out" / "metrics.json").read_text()
    assert "NaN" not in text and metrics["Prior Sets"] is None  # no prior set present: undefined, not NaN
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_evaluate_never_writes_over_its_input_or_a_users_file(exported, tmp_path):
    from bsr_lightning.errors import ConfigError, UserError

    data = write_jsonl(tmp_path / "scores.jsonl", [{"prompt": "p", "chosen": "good answer", "rejected": "bad"}])
    (tmp_path / "report.md").write_text("my report")
    with pytest.raises(UserError, match=r"would write its output over its input .*scores.jsonl"):
        cli_main(["evaluate", "--model", exported, "--data", data, "--output_dir", str(tmp_path), "--overwrite",
                  "true"])
    inputs = tmp_path / "in"
    inputs.mkdir()
    data = write_jsonl(inputs / "d[1].jsonl", [{"prompt": "p", "chosen": "good answer", "rejected": "bad"}])
    write_jsonl(inputs / "d1.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}] * 5)
    with pytest.raises(UserError, match=r"holds .* evaluate did not write \(e.g. 'in'\)"):
        cli_main(["evaluate", "--model", exported, "--data", data, "--output_dir", str(tmp_path)])
    assert (tmp_path / "report.md").read_text() == "my report"
    metrics, _ = run(exported, data, "pairs", tmp_path / "out")  # the bracketed name is that file, not d1.jsonl
    assert metrics["pairs"] == 1
    for flag, value in (("--chunk_rows", "0"), ("--batch_size", "-1")):
        with pytest.raises(ConfigError, match=f"{flag.strip('-')}: must be at least 1, got {value}"):
            cli_main(["evaluate", "--model", exported, "--data", data, "--output_dir", str(tmp_path / "out"), flag,
                      value])
