"""Tokenizers: a pad token distinct from EOS, and chat templates given inline or as ``.jinja`` files."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from bsr_lightning.backbones.names import resolve_model_path
from bsr_lightning.errors import PathNotFound

PAD_TOKEN = "<|pad|>"


def load_tokenizer(name_or_path: str, chat_template: str | None = None, trust_remote_code: bool = False):
    """Load a tokenizer, give it a pad token distinct from EOS and an optional chat template.

    A pad token equal to EOS would make Hugging Face's sequence-classification pooling (rightmost non-pad token)
    skip the final EOS, so exported models would score a different token than training did. We add ``<|pad|>``
    instead; its embedding row is never attended to.

    Args:
        name_or_path: hub id, local directory, ``pkg:MODULE`` or ``tiny:NAME``.
        chat_template: a Jinja chat template (inline or ``.jinja`` path) replacing the tokenizer's.
        trust_remote_code: allow tokenizer code from the hub.
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path), trust_remote_code=trust_remote_code)
    except PathNotFound:
        raise
    except OSError as err:  # transformers' "not a local folder and not a valid model identifier", network errors
        raise PathNotFound(f"model {name_or_path!r}: {str(err).splitlines()[0]}") from err
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    if chat_template is not None:
        tokenizer.chat_template = read_template(chat_template)
    return tokenizer


def read_template(template: str) -> str:
    """A chat template given inline or as the path of a ``.jinja`` file."""
    if template.endswith((".jinja", ".j2")) and Path(template).is_file():
        return Path(template).read_text()
    return template
