"""One prepared GPU check: throughput, MFU and peak memory against ``plan``, on randomly initialized models.

Sections (each runs through the package's own config parsing, as ``fit`` does, and records an error instead of
stopping the others):

1. ``rm_*``: a reward model on a Llama-style decoder of about 1.07B parameters (hidden 2048, 16 layers, MLP 8192,
   vocab 32k), ``bf16-mixed``, on about 6k-token batches (6 pairs: a shared 128-256-token prompt, then 256-512
   tokens a side): ``Padded``, ``Packed`` with sdpa, ``Packed`` with flash_attention_2 when ``flash_attn`` imports,
   ``SharedPrefix`` with sdpa (a 4D mask) and with flex_attention (a block-sparse mask; GPU only); FSDP2
   (``ModelParallelStrategy``) on the one GPU; QLoRA nf4 (fp32 compute, so the exported model's scores can be
   compared with the module's at the CPU test's tolerance).
2. ``rloo``: 5 steps of a ~0.4B policy (hidden 896, 24 layers) against the 1.07B reward model: rollouts/s, with
   ``HFGenerate`` and (``rloo_vllm``) with ``VLLMGenerate`` when vLLM is installed.
3. ``scores_fp32_vs_bf16``: the reward model's scores of the same inputs loaded in fp32 and in bf16.

MFU = (real tokens/s) x (6 N + 12 L H T) / peak, with N the non-embedding parameters, L layers, H hidden size, T the
mean real sequence length (PaLM, Chowdhery et al. 2022, App. B: the attention term counts the full T x T matrix),
against the card's dense bf16 peak (H100 SXM and H200: 989 TFLOP/s). Peak memory is
``torch.cuda.max_memory_allocated`` over the section, beside ``plan``'s estimate for the same config.

On the GPU machine (no hub access; jsonargparse, bitsandbytes and datasets travel as wheels, see
``scripts/gpu_wheels.sh``)::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
    PYTHONPATH=/tmp/site:src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 python3 scripts/gpu_check.py --output $OUT

``--dry_run`` runs the same code on tiny models on the CPU in about a minute (a test does, so the script cannot rot
between GPU loans). Writes ``gpu_check.json`` and ``gpu_check.md`` into ``--output``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import random
import sys
import time
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import lightning as L  # noqa: E402
import torch  # noqa: E402

SIZES = {
    "gpu": {"rm": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 16,
                   "num_key_value_heads": 8},
            "policy": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                       "num_attention_heads": 14, "num_key_value_heads": 2},
            "vocab": 32000, "steps": 12, "warmup": 3, "lengths": (256, 512), "pairs": 6, "rloo_steps": 5,
            "new_tokens": 256},
    "dry": {"rm": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "num_key_value_heads": 2},
            "policy": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "num_key_value_heads": 2},
            "vocab": 512, "steps": 3, "warmup": 1, "lengths": (16, 48), "pairs": 4, "rloo_steps": 3, "new_tokens": 8},
}
PEAK_BF16 = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense, no sparsity


def peak_flops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def write_model(path: Path, sizes: dict, vocab: int, causal: bool) -> str:
    """A randomly initialized Llama (causal LM or one-label classifier) with the tiny word-level tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    from bsr_lightning.backbones.tokenizers import load_tokenizer

    tokenizer = load_tokenizer("tiny:synthetic")
    special = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
               "eos_token_id": tokenizer.eos_token_id}
    config = LlamaConfig(vocab_size=vocab, max_position_embeddings=4096, num_labels=1, **special, **sizes)
    torch.manual_seed(0)
    model = (LlamaForCausalLM if causal else LlamaForSequenceClassification)(config)
    model.to(torch.bfloat16).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def write_pairs(path: Path, count: int, lengths: tuple[int, int]) -> str:
    """Preference rows whose chosen/rejected texts are ``lengths`` words (one token each) of the tiny vocabulary,
    after a shared prompt of half as many (what ``SharedPrefix`` computes once)."""
    from bsr_lightning.synthetic_task import vocabulary

    words, rng = vocabulary(), random.Random(0)
    with open(path, "w") as handle:
        for _ in range(count):
            prompt, *texts = [" ".join(rng.choices(words, k=rng.randint(*lengths) // d)) for d in (2, 1, 1)]
            handle.write(json.dumps({"prompt": prompt, "chosen": texts[0], "rejected": texts[1]}) + "\n")
    return str(path)


class Clock(L.Callback):
    """Times training batches after ``warmup`` and counts their real tokens (reward-model batches)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.times, self.tokens, self.lengths = [], [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if "prompts" not in batch:
            mask = batch["attention_mask"]
            self.tokens.append(int(mask.sum()))
            self.lengths.append(float(mask.sum(-1).float().mean()))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())

    def rate(self, per_step: list[float]) -> float:
        """``per_step`` (one value per batch) summed over the timed batches, per second."""
        timed = self.times[self.warmup:]
        if len(timed) < 2:
            raise ValueError(f"{len(self.times)} batches timed with {self.warmup} warm-up: run more steps.")
        return sum(per_step[self.warmup + 1: len(self.times)]) / (timed[-1] - timed[0])


def build(config: dict, tmp: Path):
    """Parse ``config`` as ``fit`` would and instantiate it (no run); returns the CLI and ``plan``'s estimate."""
    import yaml

    from bsr_lightning.cli import BSRLightningCLI
    from bsr_lightning.plan import memory_plan

    config["trainer"].setdefault("default_root_dir", str(tmp))  # LightningCLI's config.yaml goes there, not to cwd
    path = tmp / f"config_{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(config))
    with warnings.catch_warnings():  # LightningCLI warns that sys.argv holds this script's own arguments
        warnings.simplefilter("ignore", UserWarning)
        cli = BSRLightningCLI(args=["--config", str(path)], run=False)
    return cli, memory_plan(cli.config)


def trainer_config(device: str, steps: int, strategy=None, precision: str = "bf16-mixed") -> dict:
    config = {"accelerator": device, "devices": 1, "max_steps": steps, "precision": precision, "logger": False,
              "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False,
              "limit_val_batches": 0, "num_sanity_val_steps": 0}
    if strategy is not None:
        config["strategy"] = strategy
    return config


def reset_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def rm_section(env: dict, forward_mode: str, attention: str = "sdpa", strategy=None, qlora: bool = False) -> dict:
    """Train the reward model for ``steps`` batches; tokens/s, MFU and peak memory against the plan."""
    size = env["size"]
    backbone = {"name": env["rm_dir"], "attention": attention, "dtype": "float32"}
    if qlora:
        backbone.update(quantization="nf4", lora={"r": 16, "alpha": 32})
    model = {"class_path": "bsr_lightning.RewardModel",
             "init_args": {"backbone": backbone, "score_init": "normal",
                           "forward_mode": {"class_path": f"bsr_lightning.reward.forward.{forward_mode}"},
                           "optimization": {"lr": 1e-5, "schedule": "constant"}}}
    data = {"class_path": "bsr_lightning.PreferenceDataModule",
            "init_args": {"path": env["pairs"], "val_fraction": 0.0, "max_length": 1024, "batch_size": size["pairs"],
                          "overlong": "truncate_left"}}
    precision = "32-true" if qlora else "bf16-mixed"
    config = {"seed_everything": 0, "trainer": trainer_config(env["device"], size["steps"], strategy, precision),
              "model": model, "data": data}
    reset_memory()
    cli, plan = build(config, env["tmp"])
    clock = Clock(size["warmup"])
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, cli.datamodule)
    tokens_per_s = clock.rate(clock.tokens)
    result = {"tokens_per_s": tokens_per_s, "peak_gib": peak_gib(), "plan_gib": plan["total_gib_per_device"],
              "mfu": mfu(cli.model.backbone, tokens_per_s, sum(clock.lengths) / len(clock.lengths), env)}
    if qlora:  # the CPU test's tolerance (tests/test_qlora.py): within 1% of the largest score
        result["export_max_rel_diff"] = export_difference(cli.model, env)
        result["export_within_tolerance"] = result["export_max_rel_diff"] <= 1e-2
    return result


def mfu(backbone, tokens_per_s: float, mean_length: float, env: dict) -> float | None:
    """Model FLOPs utilization by the formula of the module docstring (None without a known peak)."""
    config = backbone.config
    embedding = backbone.get_input_embeddings().weight.numel()
    params = sum(p.numel() for p in backbone.parameters()) - embedding
    flops_per_token = 6 * params + 12 * config.num_hidden_layers * config.hidden_size * mean_length
    peak = peak_flops(env["device_name"])
    return tokens_per_s * flops_per_token / peak if peak else None


def export_difference(module, env: dict) -> float:
    """Max relative difference between the trained QLoRA module's scores and its dense export's."""
    from transformers import AutoModelForSequenceClassification

    from bsr_lightning.backbones.export import export_module

    batch = next(iter(module.trainer.datamodule.train_dataloader()))
    ids, mask = batch["input_ids"].to(module.device), batch["attention_mask"].to(module.device)
    module.eval()
    inference = module.score(ids, mask).float()
    out = export_module(module, env["tmp"] / "qlora_export")
    exported = AutoModelForSequenceClassification.from_pretrained(out).to(module.device).eval()
    with torch.no_grad():
        got = exported(input_ids=ids, attention_mask=mask).logits.squeeze(-1).float()
    return float(((got - inference).abs() / inference.abs().max()).max())


def rloo_section(env: dict, generation: str = "bsr_lightning.rloo.generation.HFGenerate",
                 forward_mode: str = "Padded") -> dict:
    """RLOO steps of the policy against the reward model: rollouts/s and peak memory against the plan; the
    log-prob passes ``Padded`` or ``SharedPrompt`` (each prompt once for its k samples)."""
    size, prompts, k = env["size"], 8, 4
    model = {"class_path": "bsr_lightning.RLOOPolicy",
             "init_args": {"backbone": {"name": env["policy_dir"], "attention": "sdpa", "dtype": "float32"},
                           "reward": {"class_path": "bsr_lightning.rloo.rewards.ModelReward",
                                      "init_args": {"path": env["rm_dir"], "batch_size": 32, "max_length": 1024}},
                           "sampling": {"k": k, "temperature": 1.0, "max_new_tokens": size["new_tokens"]},
                           "optimization": {"lr": 1e-6, "schedule": "constant", "max_grad_norm": 1.0},
                           "generation": {"class_path": generation}, "samples_every_n_steps": 0,
                           "forward_mode": {"class_path": f"bsr_lightning.rloo.forward.{forward_mode}"}}}
    data = {"class_path": "bsr_lightning.SyntheticPromptDataModule",
            "init_args": {"batch_size": prompts, "num_val_prompts": 0, "val_fraction": 0.0, "max_length": 64}}
    config = {"seed_everything": 0, "trainer": trainer_config(env["device"], size["rloo_steps"]), "model": model,
              "data": data}
    reset_memory()
    cli, plan = build(config, env["tmp"])
    clock = Clock(warmup=1)
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, cli.datamodule)
    rollouts = [prompts * k] * len(clock.times)
    return {"rollouts_per_s": clock.rate(rollouts), "peak_gib": peak_gib(), "plan_gib": plan["total_gib_per_device"],
            "response_tokens": size["new_tokens"]}


def scores_section(env: dict) -> dict:
    """Scores of the same sequences by the reward model loaded in fp32 and in bf16."""
    from bsr_lightning import Backbone, RewardModel
    from bsr_lightning.data.collate import pad_sequences

    reset_memory()
    rng = torch.Generator().manual_seed(0)
    lengths = torch.randint(*env["size"]["lengths"], (32,), generator=rng).tolist()
    seqs = [torch.randint(10, 150, (n,), generator=rng).numpy() for n in lengths]
    scores = {}
    for dtype in ("float32", "bfloat16"):
        module = RewardModel(Backbone(env["rm_dir"], dtype=dtype, attention="sdpa")).to(env["device"]).eval()
        ids, mask = pad_sequences(seqs, module.tokenizer.pad_token_id, module.tokenizer.padding_side)
        scores[dtype] = module.score(ids.to(module.device), mask.to(module.device)).float().cpu()
        del module
    diff = (scores["float32"] - scores["bfloat16"]).abs()
    return {"max_abs_diff": float(diff.max()), "score_std_fp32": float(scores["float32"].std()),
            "max_abs_diff_over_std": float(diff.max() / scores["float32"].std())}


def sections(env: dict) -> dict:
    fsdp2 = {"class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
             "init_args": {"data_parallel_size": 1, "tensor_parallel_size": 1}}
    out = {"rm_padded_sdpa": lambda: rm_section(env, "Padded"),
           "rm_packed_sdpa": lambda: rm_section(env, "Packed"),
           "rm_packed_flash_attention_2": lambda: rm_section(env, "Packed", "flash_attention_2"),
           "rm_shared_prefix_sdpa": lambda: rm_section(env, "SharedPrefix"),
           "rm_shared_prefix_flex_attention": lambda: rm_section(env, "SharedPrefix", "flex_attention"),
           "rm_fsdp2_padded": lambda: rm_section(env, "Padded", strategy=fsdp2),
           "rm_qlora_nf4_fp32": lambda: rm_section(env, "Padded", qlora=True),
           "rloo": lambda: rloo_section(env),
           "rloo_shared_prompt": lambda: rloo_section(env, forward_mode="SharedPrompt"),
           "rloo_vllm": lambda: rloo_section(env, "bsr_lightning.rloo.vllm_generation.VLLMGenerate"),
           "scores_fp32_vs_bf16": lambda: scores_section(env)}
    if importlib.util.find_spec("flash_attn") is None or env["device"] == "cpu":
        out["rm_packed_flash_attention_2"] = lambda: {"skipped": "flash_attn is not installed (or no GPU)"}
    if env["device"] == "cpu":
        out["rm_shared_prefix_flex_attention"] = lambda: {"skipped": "torch has no FlexAttention backward on CPU"}
    if importlib.util.find_spec("vllm") is None or env["device"] == "cpu":
        out["rloo_vllm"] = lambda: {"skipped": "vllm is not installed (or no GPU)"}
    return out


def run_all(env: dict) -> dict:
    results = {}
    for name, section in sections(env).items():
        start = time.perf_counter()
        try:
            results[name] = section()
        except Exception as err:  # keep the other sections' figures
            results[name] = {"error": f"{type(err).__name__}: {err}"[:2000], "trace": traceback.format_exc()[-4000:]}
        finally:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "trace"}), flush=True)
    return results


def markdown(report: dict) -> str:
    lines = [f"Device: {report['device_name']}; torch {report['torch']}; dry run: {report['dry_run']}", "",
             "| section | tokens/s | rollouts/s | MFU | peak GiB | plan GiB | other | s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]

    def fmt(value, spec):
        return "" if value is None else format(value, spec)

    for name, r in report["sections"].items():
        notes = ("export_max_rel_diff", "max_abs_diff", "max_abs_diff_over_std")
        other = r.get("error") or r.get("skipped") or ", ".join(f"{k} {r[k]:.3g}" for k in notes if k in r)
        lines.append(f"| {name} | {fmt(r.get('tokens_per_s'), '.0f')} | {fmt(r.get('rollouts_per_s'), '.2f')} | "
                     f"{fmt(r.get('mfu'), '.1%')} | {fmt(r.get('peak_gib'), '.2f')} | {fmt(r.get('plan_gib'), '.2f')} "
                     f"| {other} | {r.get('seconds', '')} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry_run", action="store_true", help="tiny models on the CPU")
    parser.add_argument("--output", default="artifacts/gpu_check", help="where gpu_check.json and .md go")
    args = parser.parse_args()
    import tempfile

    device = "cpu" if args.dry_run or not torch.cuda.is_available() else "cuda"
    size = SIZES["dry" if args.dry_run else "gpu"]
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {"device": device, "size": size, "tmp": tmp,
               "device_name": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
               "rm_dir": write_model(tmp / "rm", size["rm"], size["vocab"], causal=False),
               "policy_dir": write_model(tmp / "policy", size["policy"], size["vocab"], causal=True),
               "pairs": write_pairs(tmp / "pairs.jsonl", 16 * size["pairs"], size["lengths"])}
        report = {"device_name": env["device_name"], "torch": torch.__version__, "dry_run": args.dry_run,
                  "sections": run_all(env)}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return 1 if any("error" in r for r in report["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
