"""Write the small sample files under ``examples/`` that the README's commands read, from the generated task (its
gold reward is known for any text): preference pairs, multi-response sets (ours and the paper's released shape), a
RewardBench-, a RewardBench 2- and an RM-Bench-shaped file, and a one-row-per-response table for ``scenarios``.

    python scripts/make_examples.py            # rewrites examples/ (deterministic)
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from bsr_lightning.synthetic_task import generate_preference_rows, response_table

OUT = Path(__file__).resolve().parents[1] / "examples"
SUBSETS = ["alpacaeval-easy", "mt-bench-med", "llmbar-natural", "refusals-dangerous", "xstest-should-respond",
           "math-prm", "hep-python", "anthropic_helpful"]
DOMAINS = ["chat", "code", "math", "safety-refuse", "safety-response"]
RB2_SUBSETS = ["Factuality", "Precise IF", "Math", "Safety", "Focus"]


def write_jsonl(name: str, rows: list[dict]) -> None:
    (OUT / name).write_text("".join(json.dumps(row) + "\n" for row in rows))


def multi_sets(table: list[dict]) -> list[dict]:
    by_prompt = defaultdict(list)
    for row in table:
        by_prompt[row["prompt"]].append(row)
    return [{"prompt": p, "responses": [r["response"] for r in rs], "scores": [r["score"] for r in rs]}
            for p, rs in by_prompt.items()]


def rewardbench2_rows(sets: list[dict]) -> list[dict]:
    """RewardBench 2's shape: the best of 4 by gold score chosen, the rest rejected, five subsets; then Ties rows
    (``ref:N`` with one correct completion, ``tied:N`` with the best two) for the first sets."""
    rows = []
    for i, s in enumerate(sets):
        ranked = [t for _, t in sorted(zip(s["scores"], s["responses"], strict=True), reverse=True)]
        rows.append({"id": str(i), "prompt": s["prompt"], "chosen": ranked[:1], "rejected": ranked[1:],
                     "num_correct": 1, "total_completions": len(ranked), "subset": RB2_SUBSETS[i % 5]})
        if i < 4:
            for kind, correct in (("ref", 1), ("tied", 2)):
                rows.append({"id": f"{kind}:{i}", "prompt": s["prompt"], "chosen": ranked[:correct],
                             "rejected": ranked[correct:], "num_correct": correct, "total_completions": len(ranked),
                             "subset": "Ties"})
    return rows


def main() -> None:
    OUT.mkdir(exist_ok=True)
    pairs = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in generate_preference_rows(40, seed=11)]
    write_jsonl("pairs.jsonl", pairs)
    sets = multi_sets(response_table(12, 4, seed=12))
    write_jsonl("multi.jsonl", sets)
    write_jsonl("multi_paper_format.jsonl", [
        {"prompt": s["prompt"], **{f"response_{k + 1}_text": t for k, t in enumerate(s["responses"])},
         "all_scores": s["scores"]} for s in sets])
    write_jsonl("rewardbench2.jsonl", rewardbench2_rows(sets))
    write_jsonl("rewardbench.jsonl", [{**pair, "subset": SUBSETS[i % len(SUBSETS)], "id": i}
                                      for i, pair in enumerate(pairs[:32])])
    rmbench = [{"id": i, "prompt": pair["prompt"], "domain": DOMAINS[i % len(DOMAINS)],
                "chosen": [pair["chosen"], pair["chosen"] + " In short: practise.", f"**{pair['chosen']}**"],
                "rejected": [pair["rejected"], pair["rejected"] + " In short: whatever.", f"**{pair['rejected']}**"]}
               for i, pair in enumerate(pairs[:20])]
    (OUT / "rmbench.json").write_text(json.dumps(rmbench, indent=1) + "\n")
    write_jsonl("responses.jsonl", response_table(48, 8, seed=13))
    print(f"wrote {sorted(p.name for p in OUT.iterdir())}")


if __name__ == "__main__":
    main()
