"""The ``--prompts hh`` rows of ``scripts/bench_rloo.py``: RLOO's update step with each prompt computed once for its
k samples (``SharedPrompt``) against the padded pass (``Padded``), on HH-RLHF-length prompts.

    python scripts/bench_rloo.py --prompts hh --seeds 0 1 --output docs/bench_rloo_groups.json

Policy: ``scripts/bench_decoder.py``'s Llama shape as a causal LM (random init, fixed seed; MiniLM's WordPiece
tokenizer), fp32, ``sdpa``. Rollouts: 8 prompts per step, k = 4 samples each, 64 new tokens: the prompts are the
HH-RLHF harmless-base transcripts beside the repo (the seed picks them; cut to their last 256 tokens), the responses
random tokens of 32 to 64 tokens (the update's cost does not depend on which tokens were sampled). An update step is
what a training step does after sampling: the log-prob pass without gradient (old log-probs), the reference's pass,
then the policy's pass, SequenceClip's loss, backward and an AdamW step. Each row runs in a fresh process, the two
alternating per seed; the first of ``--steps`` steps is a warm-up and not timed. Log-probs of the two rows are
checked equal. Then whole steps (sampling included) of the project grouped, the project padded and TRL's
RLOOTrainer (skipped, and said so, where trl is not installed): ``scripts/bench_rloo_steps.py``.
The last line of output is one JSON object with ``update_ratio_grouped_vs_padded`` and ``rollouts_ratio_vs_trl``
(means over seeds).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROWS = ("grouped", "padded")
PROMPTS, K, NEW, PROMPT_TOKENS = 8, 4, 64, 256


def build_policy(folder: Path) -> dict:
    """A Llama-shaped causal LM of ``bench_decoder.DECODER_SHAPE`` (once)."""
    import torch
    from bench_decoder import DECODER_SHAPE
    from bench_rm import MODEL
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from bsr_lightning.backbones.names import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(MODEL))
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, **DECODER_SHAPE)
    if not (folder / "config.json").exists():
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return {"family": "llama (causal LM)", **DECODER_SHAPE, "vocab_size": len(tokenizer)}


def make_rollout(tokenizer, seed: int, step: int):
    """A :class:`~bsr_lightning.rloo.generation.Rollout` of ``PROMPTS`` HH prompts x ``K`` random responses."""
    import torch
    from bench_eval import DATA

    from bsr_lightning.data.loading import iter_raw_rows
    from bsr_lightning.rloo.generation import Rollout

    texts = [row["chosen"].rsplit("\n\nAssistant:", 1)[0] + "\n\nAssistant:" for _, (_, row) in
             zip(range(2000), iter_raw_rows(DATA), strict=False) if isinstance(row, dict)]
    g = torch.Generator().manual_seed(1000 * seed + step)
    picked = [texts[int(i)] for i in torch.randint(len(texts), (PROMPTS,), generator=g)]
    prompt_ids = [tokenizer(t, add_special_tokens=False)["input_ids"][-PROMPT_TOKENS:] for t in picked]
    width = max(map(len, prompt_ids))
    rows, masks, response_masks = [], [], []
    for ids in prompt_ids:
        for _ in range(K):
            n = int(torch.randint(32, NEW + 1, (1,), generator=g))
            response = torch.randint(1000, len(tokenizer), (NEW,), generator=g)
            rows.append(torch.cat([torch.full((width - len(ids),), tokenizer.pad_token_id), torch.tensor(ids),
                                   response]))
            real = torch.cat([torch.zeros(width - len(ids)), torch.ones(len(ids)), torch.arange(NEW) < n]).long()
            masks.append(real)
            response_masks.append((torch.arange(NEW) < n).long())
    prompts = [[{"role": "user", "content": t}] for t in picked for _ in range(K)]
    return Rollout(prompts, torch.stack(rows), torch.stack(masks), torch.stack(response_masks), width,
                   [""] * len(rows), torch.ones(len(rows), dtype=torch.bool))


def run(policy: str, row: str, seed: int, steps: int) -> dict:
    """One row, in this process: seconds per update step, and the first step's log-probs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bsr_lightning.rloo.forward import Padded, SharedPrompt
    from bsr_lightning.rloo.loss import SequenceClip

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    model = AutoModelForCausalLM.from_pretrained(policy, attn_implementation="sdpa")
    reference = AutoModelForCausalLM.from_pretrained(policy, attn_implementation="sdpa").requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-7)
    mode, loss_fn = (SharedPrompt() if row == "grouped" else Padded()), SequenceClip()
    times, first = [], None
    for step in range(steps):
        rollout = make_rollout(tokenizer, seed, step)
        index = torch.arange(len(rollout.prompts))
        mask = rollout.response_mask.float()
        start = time.perf_counter()
        with torch.no_grad():
            old, _ = mode(model, rollout, index, 1.0, K)
            mode(reference, rollout, index, 1.0, K)
        logp, _ = mode(model, rollout, index, 1.0, K)
        advantages = torch.randn(len(index), generator=torch.Generator().manual_seed(step))
        loss, _ = loss_fn(logp, old, advantages, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
        else:
            first = logp.detach()[rollout.response_mask.bool()].tolist()
    seconds = sum(times) / len(times)
    return {"row": row, "seed": seed, "seconds_per_update": round(seconds, 3),
            "rollouts_per_s_in_update": round(PROMPTS * K / seconds, 2), "first_logp": first}


def main(args) -> None:
    import bench_rloo_steps
    import numpy as np
    from bench_bf16_cpu import machine  # beside this script

    if args.row and args.row.startswith("whole-"):
        print(json.dumps(bench_rloo_steps.run(args.policy_dir, args.row[6:], args.seed_one, args.steps)))
        return
    if args.row:
        print(json.dumps(run(args.policy_dir, args.row, args.seed_one, args.steps)))
        return
    folder = Path(tempfile.gettempdir()) / "bsr_lightning_bench_policy"
    shape = build_policy(folder)
    args.trl = importlib.util.find_spec("trl") is not None
    results = []
    for seed in args.seeds:
        pair = {}
        for row in ROWS:
            done = subprocess.run([sys.executable, sys.argv[0], "--prompts", "hh", "--row", row, "--policy_dir",
                                   str(folder), "--seed_one", str(seed), "--steps", str(args.steps)],
                                  capture_output=True, text=True, check=True)
            pair[row] = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps({k: v for k, v in pair[row].items() if k != "first_logp"}), file=sys.stderr, flush=True)
        diff = float(np.max(np.abs(np.subtract(pair["grouped"]["first_logp"], pair["padded"]["first_logp"]))))
        assert diff < 1e-3, diff
        results.append({"seed": seed, "max_abs_logp_diff": diff,
                        **{row: {k: v for k, v in pair[row].items() if k != "first_logp"} for row in ROWS}})
    ratios = [r["padded"]["seconds_per_update"] / r["grouped"]["seconds_per_update"] for r in results]
    whole = bench_rloo_steps.main(args, Path(tempfile.gettempdir()) / "bsr_lightning_bench_rloo_steps")
    summary = {"benchmark": "rloo-update-hh", **machine(), "policy": shape,
               "settings": {"prompts_per_step": PROMPTS, "k": K, "max_new_tokens": NEW, "prompt_tokens_at_most":
                            PROMPT_TOKENS, "timed_steps": args.steps - 1, "dtype": "float32", "attention": "sdpa"},
               "seeds": results, "update_ratio_grouped_vs_padded": round(float(np.mean(ratios)), 3),
               "whole_steps": whole, "rollouts_ratio_vs_trl": whole["rollouts_ratio_vs_trl"],
               "trl": f"trl {version('trl')}" if args.trl else "skipped: trl is not installed"}
    if args.output:
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))

