"""Helpers of scripts/bench_rm.py: the benchmark's decoder (a Llama-shaped reward model at random init from a fixed
seed, with the encoder's WordPiece tokenizer, so both sides see the same token ids) and a counter of the tokens a
training run actually computes (padding and repeated prompts included)."""

from __future__ import annotations

from pathlib import Path

DECODER_SHAPE = {"hidden_size": 384, "intermediate_size": 1024, "num_hidden_layers": 6, "num_attention_heads": 6,
                 "num_key_value_heads": 6, "max_position_embeddings": 1024}


def build_decoder(folder: Path, tokenizer_from: str, seed: int = 0) -> dict:
    """Write ``LlamaForSequenceClassification`` (``DECODER_SHAPE``, ``seed``) and ``tokenizer_from``'s tokenizer into
    ``folder`` (once); returns the shape with the parameter count."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    config = LlamaConfig(vocab_size=len(tokenizer), num_labels=1, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, **DECODER_SHAPE)
    if not (folder / "config.json").exists():
        torch.manual_seed(seed)
        model = LlamaForSequenceClassification(config)
        tokenizer.save_pretrained(folder)
        model.save_pretrained(folder)
    with torch.device("meta"):  # the count without allocating or initializing weights
        params = sum(p.numel() for p in LlamaForSequenceClassification(config).parameters())
    return {"family": "llama", "init": f"random, torch.manual_seed({seed})", **DECODER_SHAPE,
            "vocab_size": len(tokenizer), "parameters": params}


class ComputedTokens:
    """Counts the token positions every forward pass of ``model``'s transformer computes: ``(N, T)`` inputs count
    ``N * T``, padding included; a packed ``(1, S)`` row counts ``S``."""

    def __init__(self, model) -> None:
        self.count = 0
        inner = getattr(model, "base_model", model)
        inner = getattr(inner, "base_model", inner)  # a sequence classifier's transformer body
        self.handle = inner.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and module.training:
            self.count += ids.numel()

    def close(self) -> int:
        self.handle.remove()
        return self.count
