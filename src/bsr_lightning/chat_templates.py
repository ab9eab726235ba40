"""Chat templates by value: inline Jinja, a file, or a name (``zephyr``, ``plain``), resolved to their text once,
when the config is read, so a checkpoint and an export hold the text itself and never a path."""

from __future__ import annotations

from pathlib import Path

from bsr_lightning.errors import ConfigError

PLAIN_CHAT_TEMPLATE = (
    "{%- set names = {'user': 'Human', 'assistant': 'Assistant', 'system': 'System'} -%}"
    "{%- for m in messages -%}{%- if not loop.first -%}{{ '\\n\\n' }}{%- endif -%}"
    "{{ names[m['role']] + ': ' + m['content'] }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '\\n\\nAssistant:' }}{%- endif -%}"
)
"""The plain ``Human: ...\\n\\nAssistant: ...`` text that a tokenizer without a chat template is trained on, as a
template: exports write it, so RewardBench's loader, ``apply_chat_template`` and ``evaluate`` read the same text.
Unlike real chat templates it writes no special tokens, so the tokenizer adds its own (``[CLS]``/``[SEP]``, BOS)."""

ZEPHYR_CHAT_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)
"""The Zephyr template of the alignment handbook, which the paper's code (``scripts/run_alignment.py`` of
LinkedIn-XFACT/RM-Robustness) sets whenever a recipe leaves ``chat_template`` unset, as its BSR recipe does:
``<|user|>\\n{content}{eos}\\n<|assistant|>\\n{content}{eos}\\n``. It writes no BOS, and the text is tokenized with
``add_special_tokens=False``, so none is added (as there)."""

NAMED_TEMPLATES = {"zephyr": ZEPHYR_CHAT_TEMPLATE, "plain": PLAIN_CHAT_TEMPLATE}


def _is_jinja(text: str) -> bool:
    return "{{" in text or "{%" in text


def resolve_template(value: str | None, key: str = "backbone.chat_template") -> str | None:
    """The template text of ``value``: inline Jinja as it is, a name of :data:`NAMED_TEMPLATES`, or the text of an
    existing file. Anything else stops with a :class:`ConfigError` naming ``key``: a path that does not exist is
    never used as the template text itself."""
    if value is None or _is_jinja(value):
        return value
    if value in NAMED_TEMPLATES:
        return NAMED_TEMPLATES[value]
    path = Path(value).expanduser()
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if not _is_jinja(text):
            raise ConfigError(f"{key}: {value} holds no Jinja ('{{{{ ... }}}}' or '{{% ... %}}'); give a chat "
                              "template file.")
        return text
    raise ConfigError(f"{key}: {value!r} is not a Jinja template, not one of the named templates "
                      f"({', '.join(NAMED_TEMPLATES)}), and no such file (cwd: {Path.cwd()}). Give the template "
                      "text, a name, or the path of a .jinja file.")


def stored_template(value: object, key: str) -> str | None:
    """A chat template as a file (a checkpoint's hyper-parameters) may carry it: Jinja text or a template name,
    never a path, which would read a file this run never named. Anything else stops with a :class:`ConfigError`."""
    if value is None or isinstance(value, str) and (_is_jinja(value) or value in NAMED_TEMPLATES):
        return value
    raise ConfigError(f"{key}: {str(value)[:200]!r} is not template text or a template name; a checkpoint carries the "
                      "template itself, and a path it names is never read. Re-export from a checkpoint fit wrote.")
