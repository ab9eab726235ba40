"""``python -m bsr_lightning plan --config X``: parameter counts and expected memory per device, before launching.

The config is parsed exactly as ``fit`` parses it (same overrides), but nothing is instantiated: the backbone is
built on the ``meta`` device from its Hugging Face config (no weights are read), with the tokenizer's added tokens
and the LoRA adapters applied, so the parameter counts are exact. Memory is an estimate per device:

* weights: ``backbone.dtype`` bytes per parameter (fp32 when unset); with ``nf4`` the decoder's linear weights take
  0.5 byte + 0.127 bit of double-quantized scales, with ``int8`` 1 byte + a float per row;
* gradients (in the parameters' dtype) and optimizer states for trainable parameters: AdamW's two moments in the
  parameters' dtype, bitsandbytes' 8-bit optimizers (``PagedAdamW8bit``, ``AdamW8bit``) two 1-byte codes plus a
  float32 scale per 256-value block, SGD one momentum (:func:`optimizer_state_bytes`);
* FSDP (``FULL_SHARD``) divides weights, gradients and optimizer states by the number of devices (nodes x devices);
  ``SHARD_GRAD_OP`` divides gradients and optimizer states; DDP divides nothing;
* activations for one micro-batch (reward model: 2 x batch_size sequences of max_length; RLOO: prompts x k of
  max_length + max_new_tokens): per layer ``tokens x hidden x 34 bytes`` in 16-bit (Korthikanti et al. 2022, with a
  fused attention kernel; x2 in fp32), only the layer inputs with activation checkpointing; plus fp32 logits for
  language models;
* RLOO also holds the reward model (scored in its saved dtype), the reference policy (free with LoRA: adapters
  disabled) and the generation KV cache.

Allocator fragmentation, CUDA context (~0.5 GiB) and temporary buffers come on top: keep 10-20% headroom.
"""

from __future__ import annotations

import torch
from jsonargparse import Namespace

from bsr_lightning.args import Sampling
from bsr_lightning.backbones.adapters import apply_lora
from bsr_lightning.backbones.loading import HEAD_NAMES, score_head_name
from bsr_lightning.backbones.names import resolve_model_path
from bsr_lightning.backbones.tokenizers import load_tokenizer

GIB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, None: 4}


def meta_backbone(backbone: Namespace, causal: bool):
    """The module's backbone on the meta device: exact parameter shapes, no weights read."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    path = resolve_model_path(backbone.name)
    kwargs = {} if causal else {"num_labels": 1}
    config = AutoConfig.from_pretrained(path, trust_remote_code=backbone.trust_remote_code, **kwargs)
    auto = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
    with torch.device("meta"):
        model = auto.from_config(config)
    tokenizer = load_tokenizer(backbone.name, None, backbone.trust_remote_code)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    lora = backbone.lora.as_dict() if isinstance(backbone.lora, Namespace) else backbone.lora
    head = None if causal else [score_head_name(model)]
    return apply_lora(model, lora, modules_to_save=head), config


def weight_bytes(model, dtype_bytes: int, quantization: str | None) -> float:
    """Bytes of the weights: quantized linear layers inside the decoder at their packed size, the rest in dtype."""
    total = 0.0
    quantized = set()
    if quantization is not None:
        for name, module in model.named_modules():
            is_head = any(part in (*HEAD_NAMES, "lm_head") for part in name.split("."))
            if isinstance(module, torch.nn.Linear) and not is_head and "lora_" not in name:
                quantized.add(id(module.weight))
                n = module.weight.numel()
                total += n * (0.5 + 0.127 / 8) if quantization == "nf4" else n + 4 * module.weight.shape[0]
    return total + sum(p.numel() * dtype_bytes for p in model.parameters() if id(p) not in quantized)


def activation_bytes(config, sequences: int, length: int, bytes_per: int, checkpointing: bool, causal: bool) -> float:
    """One micro-batch of ``sequences x length`` tokens through the decoder (see the module docstring)."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    tokens = sequences * length
    per_layer = tokens * hidden * 34 * bytes_per / 2
    stored = layers * tokens * hidden * bytes_per + per_layer if checkpointing else layers * per_layer
    logits = tokens * config.vocab_size * 4 * 2 if causal else 0  # logits and their gradient, fp32
    return stored + logits


def shard_factors(trainer: Namespace) -> tuple[int, float, float]:
    """(world size, divisor of weights, divisor of gradients and optimizer states)."""
    devices = trainer.devices  # an int, a list of ids, or a string: "4", "auto" (counted as 1), "-1"
    if isinstance(devices, str):
        devices = int(devices) if devices.lstrip("-").isdigit() else 1
    devices = len(devices) if isinstance(devices, list) else devices
    world = max(1, devices) * max(1, trainer.num_nodes or 1)
    strategy = trainer.strategy
    name = strategy if isinstance(strategy, str) else strategy.class_path
    if "fsdp" in name.lower() or "ModelParallel" in name:
        sharding = "FULL_SHARD" if isinstance(strategy, str) else strategy.init_args.get("sharding_strategy",
                                                                                         "FULL_SHARD")
        if sharding == "NO_SHARD":
            return world, 1, 1
        return world, (world if sharding != "SHARD_GRAD_OP" else 1), world
    return world, 1, 1


def optimizer_state_bytes(optimizer: str, dtype_bytes: int) -> float:
    """Optimizer-state bytes per trainable parameter for the optimizer class path ``optimizer``."""
    name = optimizer.rpartition(".")[2].lower()
    if name.endswith("8bit"):
        return 2 * (1 + 4 / 256)  # bitsandbytes: blockwise-quantized moments, one float32 absmax per 256 values
    if name == "sgd":
        return dtype_bytes  # momentum (none without it: an upper bound)
    return 2 * dtype_bytes  # Adam-style: two moments


def _optimizer_path(init: Namespace) -> str:
    optimization = init.get("optimization")
    return optimization.optimizer if optimization is not None else "torch.optim.AdamW"


def memory_plan(config: Namespace) -> dict:
    """Parameter counts and the per-device memory estimate (GiB) of a parsed ``fit`` config."""
    init, data = config.model.init_args, config.data.init_args
    backbone, rloo = init.backbone, "reward" in init
    causal = not config.model.class_path.endswith("RewardModel")
    model, hf_config = meta_backbone(backbone, causal)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    dtype_bytes = DTYPE_BYTES[backbone.dtype]
    world, weight_div, state_div = shard_factors(config.trainer)
    compute_bytes = 2 if "16" in str(config.trainer.precision) else 4
    checkpointing = bool(backbone.gradient_checkpointing) or _activation_checkpointing(config.trainer)
    sampling = Sampling(**init.sampling.as_dict()) if rloo and init.get("sampling") else Sampling()
    if rloo:  # RLOO updates on minibatches of the batch_size x k rollouts
        sequences = data.batch_size * sampling.k // init.get("num_minibatches", 1)
        length = data.max_length + sampling.max_new_tokens
    elif causal:
        sequences, length = data.batch_size, data.max_length
    else:
        sequences, length = 2 * data.batch_size, data.max_length
    parts = {
        "weights": weight_bytes(model, dtype_bytes, backbone.quantization) / weight_div,
        "gradients": trainable * dtype_bytes / state_div,
        "optimizer_states": trainable * optimizer_state_bytes(_optimizer_path(init), dtype_bytes) / state_div,
        "activations": activation_bytes(hf_config, sequences, length, compute_bytes, checkpointing, causal),
    }
    notes = []
    if rloo:  # RLOO: reference (free with LoRA), reward model, and the generation phase's KV cache
        parts.update(_rloo_extras(init, hf_config, model, dtype_bytes, data.batch_size * sampling.k, length,
                                  compute_bytes, notes))
    gib = {k: v / GIB for k, v in parts.items()}
    phases = [gib[k] for k in ("activations", "kv_cache") if k in gib]  # generation and update do not overlap
    total = sum(v for k, v in gib.items() if k not in ("activations", "kv_cache")) + max(phases)
    return {"parameters": params, "trainable_parameters": trainable, "world_size": world,
            "micro_batch": {"sequences": sequences, "length": length}, "gib_per_device": gib,
            "total_gib_per_device": total, "notes": notes}


def _activation_checkpointing(trainer: Namespace) -> bool:
    strategy = trainer.strategy
    return not isinstance(strategy, str) and bool(strategy.init_args.get("activation_checkpointing"))


def _rloo_extras(init, hf_config, model, dtype_bytes, sequences, length, compute_bytes, notes) -> dict:
    head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // hf_config.num_attention_heads
    kv_heads = getattr(hf_config, "num_key_value_heads", None) or hf_config.num_attention_heads
    extras = {"kv_cache": 2 * hf_config.num_hidden_layers * kv_heads * head_dim * sequences * length * compute_bytes,
              "reference": 0.0 if init.backbone.get("lora") else weight_bytes(model, dtype_bytes, None)}
    path = init.reward.init_args.get("path") if init.reward.class_path.endswith("ModelReward") else None
    reward = _reward_bytes(path) if path else None
    extras["reward_model"] = reward or 0.0
    if reward is None:
        notes.append(f"reward {init.reward.class_path} ({path or 'no model'}) not found or not a model: counted as 0")
    return extras


def _reward_bytes(reward_model: str) -> float | None:
    """Bytes of an exported reward-model directory's weights in their saved dtype (None for a missing path)."""
    try:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        config = AutoConfig.from_pretrained(reward_model, num_labels=1)
    except (OSError, ValueError):
        return None
    with torch.device("meta"):
        count = sum(p.numel() for p in AutoModelForSequenceClassification.from_config(config).parameters())
    saved = config.to_dict()
    dtype = saved.get("dtype") or saved.get("torch_dtype")
    return count * DTYPE_BYTES.get(str(dtype).removeprefix("torch.") if dtype is not None else None, 4)


def format_plan(plan: dict) -> str:
    lines = [f"parameters: {plan['parameters']:,} (trainable {plan['trainable_parameters']:,})",
             f"devices: {plan['world_size']}; micro-batch: {plan['micro_batch']['sequences']} sequences x "
             f"{plan['micro_batch']['length']} tokens", "", "| per device | GiB |", "| --- | ---: |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in plan["gib_per_device"].items()]
    lines.append(f"| **total** (activations and kv_cache are separate phases: the larger counts) | "
                 f"**{plan['total_gib_per_device']:.2f}** |")
    lines += [f"note: {n}" for n in plan["notes"]]
    if torch.cuda.is_available():
        have = torch.cuda.get_device_properties(0).total_memory / GIB
        verdict = "fits" if plan["total_gib_per_device"] < 0.85 * have else "does NOT fit"
        lines.append(f"\nthis machine's GPU 0: {have:.1f} GiB -> {verdict} (with 15% headroom)")
    return "\n".join(lines)
