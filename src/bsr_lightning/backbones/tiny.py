"""Tiny offline models for demos and tests: ``tiny:synthetic`` as a backbone ``name``.

``tiny:synthetic`` is a randomly initialized 2-layer Llama (hidden 64, seed 0) with a word-level tokenizer whose
vocabulary is every word of the package's generated preference task (:mod:`bsr_lightning.synthetic_task`), plus a
chat template. It is built once into ``$BSR_LIGHTNING_CACHE`` (default ``~/.cache/bsr_lightning``) and loads with
``from_pretrained`` as a causal LM (the policy) or as a sequence classifier (a reward model). Words are separated by
whitespace only, so decoding a generated response gives back exactly the text a reward model or the gold reward
reads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bsr_lightning.errors import ConfigError
from bsr_lightning.synthetic_task import vocabulary

SPECIALS = ("<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
TINY_SIZES = {"synthetic": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                            "num_attention_heads": 4, "num_key_value_heads": 2}}


def build_word_tokenizer(words: list[str]):
    """A whitespace word-level ``PreTrainedTokenizerFast`` over ``words`` with the tiny chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*SPECIALS, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", additional_special_tokens=list(SPECIALS[4:]))
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny(name: str, output_dir: str | Path, seed: int = 0) -> Path:
    """Write the tiny model ``name`` (a key of :data:`TINY_SIZES`) and its tokenizer to ``output_dir``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if name not in TINY_SIZES:
        raise ValueError(f"Unknown tiny model {name!r}; known: {sorted(TINY_SIZES)}.")
    tokenizer = build_word_tokenizer(vocabulary())
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=512, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **TINY_SIZES[name])
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stream must not depend on whether the cache existed
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                                               pad_token_id=config.pad_token_id)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return Path(output_dir)


def tiny_model_path(name: str) -> str:
    """The local directory of the tiny model ``name`` (``tiny:NAME``), built on first use (atomically, so parallel
    runs agree)."""
    if name not in TINY_SIZES:  # checked before any folder is made: `tiny:/../../x` names nothing
        raise ConfigError(f"model 'tiny:{name}': no such tiny model; known: "
                          f"{', '.join('tiny:' + n for n in sorted(TINY_SIZES))}.")
    root = Path(os.environ.get("BSR_LIGHTNING_CACHE", Path.home() / ".cache" / "bsr_lightning"))
    target = root / "tiny" / f"{name}-v1"
    if not (target / "config.json").is_file():
        root.joinpath("tiny").mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        build_tiny(name, tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first; its copy is identical
            shutil.rmtree(tmp, ignore_errors=True)
    return str(target)
