"""The ``rmbench-decoder`` rows of ``scripts/bench_eval.py``: RM-Bench-shaped evaluation with a decoder reward
model, each prompt's six responses scored as one group (the prompt computed once) against each response alone.

    python scripts/bench_eval.py --rows rmbench-decoder --seeds 0 1 --output docs/bench_eval_groups.json

Data: the first ``--prompts`` HH-RLHF harmless-base prompts beside the repo (whole multi-turn transcripts, as the
pairs hold them), each with 6 responses (3 "chosen", 3 "rejected"): the pair's chosen and rejected final answers,
each at full length, cut to its first two thirds and to its first third, so responses differ in length as RM-Bench's
three styles do. Model: ``scripts/bench_decoder.py``'s Llama-shaped decoder (~22M parameters, random init, fixed
seed), fp32, ``sdpa``. Each row runs in a fresh process, the two alternating, once per seed (the seed orders the
prompts); timed from the file to the scores, model loading excluded. Scores of the two rows are checked equal.
The last line of output is one JSON object with ``ratio_grouped_vs_per_response`` (the mean over seeds).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = ("grouped", "per-response")


def prepare(workdir: Path, prompts: int, seed: int) -> str:
    """An RM-Bench-format JSON file of ``prompts`` HH-RLHF prompts with 6 responses each (see the module)."""
    from bench_eval import DATA

    from bsr_lightning.data.formats import row_to_pair
    from bsr_lightning.data.loading import iter_raw_rows
    from bsr_lightning.errors import RowError

    rows = []
    for i, (where, row) in enumerate(iter_raw_rows(DATA)):
        try:
            pair = row_to_pair(row, i, where)
        except RowError:
            continue
        if len(pair.chosen) != 1 or len(pair.rejected) != 1 or min(len(pair.chosen[0]["content"].strip()),
                                                                    len(pair.rejected[0]["content"].strip())) < 3:
            continue  # RM-Bench rows: one final answer per side, whose thirds are not empty

        def styles(text: str) -> list[str]:
            text = text.strip()
            return [text, text[: 2 * len(text) // 3], text[: len(text) // 3]]

        rows.append({"id": len(rows), "prompt": pair.prompt, "domain": "chat",
                     "chosen": styles(pair.chosen[0]["content"]), "rejected": styles(pair.rejected[0]["content"])})
        if len(rows) == prompts:
            break
    random.Random(seed).shuffle(rows)
    path = workdir / f"rmbench_{seed}.json"
    path.write_text(json.dumps(rows))
    return str(path)


def run(model: str, data: str, row: str, batch_size: int) -> dict:
    """One row, in this process: seconds and scores of ``evaluate --format rmbench``'s streaming loop."""
    from bsr_lightning.evaluation.evaluate import stream_scores
    from bsr_lightning.evaluation.rmbench import RMBenchEvaluator
    from bsr_lightning.reward.scoring import ConversationScorer, load_reward_model

    scorer = ConversationScorer(load_reward_model(model), batch_size, 1024, "truncate_left", progress=False,
                                shared_prefix=row == "grouped")
    evaluator = RMBenchEvaluator(data)
    lines: list[str] = []

    class Records:
        def write(self, line: str) -> None:
            lines.append(line)

    start = time.perf_counter()
    stream_scores(scorer, evaluator, evaluator.rows(data, "train"), Records(), progress=False)
    seconds = time.perf_counter() - start
    scores = [s for line in lines for side in ("chosen", "rejected") for s in json.loads(line)[side]]
    return {"row": row, "seconds": round(seconds, 2), "responses": len(scores),
            "responses_per_s": round(len(scores) / seconds, 2), "scores": scores}


def main(args) -> None:
    import numpy as np
    from bench_bf16_cpu import machine  # beside this script
    from bench_rm import decoder_path

    if args.row:
        print(json.dumps(run(args.model, args.data, args.row, args.batch_size)))
        return
    shape = decoder_path(args)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            data = prepare(Path(tmp), args.prompts, seed)
            pair = {}
            for row in ROWS:
                done = subprocess.run([sys.executable, sys.argv[0], "--rows", "rmbench-decoder", "--row", row,
                                       "--model", args.decoder_path, "--data", data, "--batch_size",
                                       str(args.batch_size)], capture_output=True, text=True, check=True)
                pair[row] = json.loads(done.stdout.strip().splitlines()[-1])
                print(json.dumps({"seed": seed, **{k: v for k, v in pair[row].items() if k != "scores"}}),
                      file=sys.stderr, flush=True)
            diff = float(np.max(np.abs(np.subtract(pair["grouped"]["scores"], pair["per-response"]["scores"]))))
            assert diff < 1e-4, diff
            results.append({"seed": seed, "max_abs_diff": diff, **{
                row: {k: v for k, v in pair[row].items() if k != "scores"} for row in ROWS}})
    ratios = [r["grouped"]["responses_per_s"] / r["per-response"]["responses_per_s"] for r in results]
    summary = {"benchmark": "rmbench-decoder", **machine(),
               "model": shape, "settings": {"prompts": args.prompts, "responses_per_prompt": 6,
                                            "batch_size": args.batch_size, "dtype": "float32"},
               "seeds": results, "ratio_grouped_vs_per_response": round(float(np.mean(ratios)), 3)}
    if args.output:
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))

