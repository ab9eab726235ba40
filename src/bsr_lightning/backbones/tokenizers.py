"""Tokenizers: a pad token distinct from EOS, and chat templates given inline or as ``.jinja`` files."""

from __future__ import annotations

from transformers import AutoTokenizer

from bsr_lightning.backbones.names import refuse_remote_code, resolve_model_path
from bsr_lightning.chat_templates import PLAIN_CHAT_TEMPLATE, resolve_template
from bsr_lightning.errors import PathNotFound
from bsr_lightning.template_probe import check_template

PAD_TOKEN = "<|pad|>"


def load_tokenizer(name_or_path: str, chat_template: str | None = None, trust_remote_code: bool = False):
    """Load a tokenizer, give it a pad token distinct from EOS and an optional chat template.

    A pad token equal to EOS would make Hugging Face's sequence-classification pooling (rightmost non-pad token)
    skip the final EOS, so exported models would score a different token than training did. We add ``<|pad|>``
    instead; its embedding row is never attended to.

    Args:
        name_or_path: hub id, local directory, ``pkg:MODULE`` or ``tiny:NAME``.
        chat_template: a chat template replacing the tokenizer's: inline Jinja, a name (``zephyr``, ``plain``) or
            the path of a template file (:func:`~bsr_lightning.chat_templates.resolve_template`).
        trust_remote_code: allow tokenizer code from the hub.
    """
    path = resolve_model_path(name_or_path)
    refuse_remote_code(path, trust_remote_code, name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except PathNotFound:
        raise
    except OSError as err:  # transformers' "not a local folder and not a valid model identifier", network errors
        raise PathNotFound(f"model {name_or_path!r}: {str(err).splitlines()[0]}") from err
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    if chat_template is not None:
        tokenizer.chat_template = resolve_template(chat_template)
    check_template(tokenizer.chat_template, f"model {name_or_path!r}")
    return tokenizer


def chat_text(tokenizer, messages: list[dict], generation_prompt: bool = False) -> str:
    """The text a model reads for ``messages``: its chat template, or :data:`PLAIN_CHAT_TEMPLATE` without one."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt,
                                         chat_template=tokenizer.chat_template or PLAIN_CHAT_TEMPLATE)


def template_writes_specials(tokenizer) -> bool:
    """True when the tokenizer's chat template writes the special tokens itself (tokenize its text with
    ``add_special_tokens=False``); False without a template or with :data:`PLAIN_CHAT_TEMPLATE`."""
    return bool(tokenizer.chat_template) and tokenizer.chat_template != PLAIN_CHAT_TEMPLATE


def export_tokenizer(tokenizer):
    """A copy of ``tokenizer`` as exports save it: with the chat template used in training
    (:data:`PLAIN_CHAT_TEMPLATE` when it had none) and right padding, which encoders with absolute positions need
    and the score pooling of ``AutoModelForSequenceClassification`` reads correctly for every model. The saved
    ``tokenizer.json`` has no fixed padding or truncation, whatever the training calls left in it: plain
    ``tokenizers`` turns "hi" into its own tokens, not into ``max_length`` of them."""
    import copy

    tokenizer = copy.deepcopy(tokenizer)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # a fast tokenizer keeps the last call's padding and truncation in tokenizer.json
        backend.no_padding()
        backend.no_truncation()
    tokenizer.chat_template = tokenizer.chat_template or PLAIN_CHAT_TEMPLATE
    tokenizer.padding_side = "right"
    tokenizer.init_kwargs["padding_side"] = "right"  # saved in tokenizer_config.json even when it is the default
    return tokenizer
