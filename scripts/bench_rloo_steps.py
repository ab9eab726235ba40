"""Whole RLOO steps on HH-RLHF-length prompts: the project with each prompt computed once (``SharedPrompt``), the
project padded (``Padded``), and TRL's RLOOTrainer; the whole-step rows of ``scripts/bench_rloo.py --prompts hh``.

A whole step is what a trainer does per batch of prompts: sample k = 4 completions of 8 prompts (at most 64 new
tokens, temperature 1, HF ``generate`` on both sides), the old and reference log-prob passes, scoring by the reward
model, the policy's pass with entropy, backward and an AdamW step. Both sides get the same models and prompts:

- the policy: ``bench_rloo_groups``'s Llama-shaped causal LM (random init, fixed seed; MiniLM's WordPiece tokenizer
  with a plain ``Human:``/``Assistant:`` chat template that writes ``[CLS]`` as BOS and ``[SEP]`` as EOS);
- the reward model: a Llama-shaped sequence classifier of the same shape (random init: throughput does not depend on
  its quality), so the project scores each prompt's k completions with the prompt computed once;
- the prompts: ``8 * steps`` HH-RLHF harmless-base prompts beside the repo (the seed picks them) whose rendered prompt
  is at most 256 tokens, so one pass over them is the run and both sides see the same prompts, in their own orders.

fp32 on CPU, ``sdpa``, beta 0.05 in the reward (sequence KL on both sides), a tiny learning rate so both policies
keep their initial lengths (mean completion lengths are reported). The first step is a warm-up and not timed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PROMPT_TOKENS, NEW = 256, 64
ROWS = ("grouped", "padded", "trl")
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}\n\n{{ 'Human' if m['role'] == 'user' else 'Assistant' }}: "
                 "{{ m['content'] }}{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}"
                 "{% if add_generation_prompt %}\n\nAssistant:{% endif %}")


def build_models(folder: Path) -> dict:
    """The policy (``folder/policy``) and the reward model (``folder/reward``), each with the chat template."""
    import torch
    from bench_decoder import DECODER_SHAPE
    from bench_rloo_groups import build_policy
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    shape = build_policy(folder / "policy")
    tokenizer = AutoTokenizer.from_pretrained(folder / "policy")
    tokenizer.bos_token, tokenizer.eos_token = tokenizer.cls_token, tokenizer.sep_token
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # no token_type_ids: generate() refuses them
    tokenizer.init_kwargs["model_input_names"] = tokenizer.model_input_names
    tokenizer.save_pretrained(folder / "policy")
    if not (folder / "reward" / "config.json").exists():
        config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, num_labels=1,
                             bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, **DECODER_SHAPE)
        torch.manual_seed(1)
        LlamaForSequenceClassification(config).save_pretrained(folder / "reward")
    tokenizer.save_pretrained(folder / "reward")
    return shape


def hh_prompts(tokenizer, seed: int, count: int) -> list[list[dict]]:
    """``count`` HH-RLHF prompts (lists of messages) of at most ``PROMPT_TOKENS`` rendered tokens (``seed`` picks)."""
    import random

    from bench_eval import DATA

    from bsr_lightning.data.formats import RowError, row_to_pair
    from bsr_lightning.data.loading import iter_raw_rows

    prompts = []
    for i, (where, row) in enumerate(iter_raw_rows(DATA)):
        try:
            prompts.append(row_to_pair(row, i, where).prompt)
        except RowError:  # the few HH rows whose turns do not alternate
            continue
    random.Random(seed).shuffle(prompts)
    fits = (p for p in prompts if len(tokenizer.apply_chat_template(p, add_generation_prompt=True)) <= PROMPT_TOKENS)
    return [p for _, p in zip(range(count), fits, strict=False)]


def run(folder: str, row: str, seed: int, steps: int) -> dict:
    """One row, in this process: rollouts/s over whole steps after the first."""
    import tempfile

    from bench_rloo import PROMPTS_PER_STEP, run_project, run_trl
    from transformers import AutoTokenizer

    from bsr_lightning import PromptDataModule
    from bsr_lightning.rloo.forward import Padded, SharedPrompt

    policy, reward = str(Path(folder) / "policy"), str(Path(folder) / "reward")
    prompts = hh_prompts(AutoTokenizer.from_pretrained(policy), seed, PROMPTS_PER_STEP * steps)
    with tempfile.TemporaryDirectory() as tmp:
        if row == "trl":
            result = run_trl(policy, reward, steps, str(Path(tmp) / "trl"), prompts, NEW)
        else:
            path = Path(tmp) / "prompts.jsonl"
            path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
            data = PromptDataModule(str(path), val_fraction=0, batch_size=PROMPTS_PER_STEP, seed=seed,
                                    max_length=PROMPT_TOKENS + 8)
            result = run_project(policy, reward, steps, data, SharedPrompt() if row == "grouped" else Padded(), NEW)
    return {"row": row, "seed": seed, **result}


def main(args, folder: Path) -> dict:
    """Every row for every seed, each in a fresh process; rollouts/s and the ratios (means over seeds)."""
    import subprocess

    import numpy as np

    shape = build_models(folder)
    results = []
    for seed in args.seeds:
        rows = {}
        for row in ROWS if args.trl else ROWS[:2]:
            done = subprocess.run([sys.executable, sys.argv[0], "--prompts", "hh", "--row", f"whole-{row}",
                                   "--policy_dir", str(folder), "--seed_one", str(seed), "--steps",
                                   str(args.whole_steps)], capture_output=True, text=True, check=False)
            if done.returncode:
                raise RuntimeError(f"row {row}, seed {seed} failed:\n{done.stderr[-4000:]}")
            rows[row] = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(rows[row]), file=sys.stderr, flush=True)
        results.append({"seed": seed, **rows})

    def ratio(a: str, b: str) -> float | None:
        if not all(b in r for r in results):
            return None
        return round(float(np.mean([r[a]["rollouts_per_s"] / r[b]["rollouts_per_s"] for r in results])), 3)

    return {"reward_model": {"family": "llama (sequence classifier)", **shape}, "steps": args.whole_steps,
            "timed_steps": args.whole_steps - 1, "seeds": results, "rollouts_ratio_vs_trl": ratio("grouped", "trl"),
            "rollouts_ratio_padded_vs_trl": ratio("padded", "trl"),
            "rollouts_ratio_grouped_vs_padded": ratio("grouped", "padded")}
