"""The model card (``README.md`` with the hub's YAML front matter) and the resolved training config that every export
carries.

A module describes itself with ``card_facts()`` (:meth:`bsr_lightning.base.BackboneModule.card_facts`): the class
that loads the export, tags, a table of what shaped the model (regularizer and weight, loss, ...), and its
``run_record`` (the command, the resolved config and the data, filled in by ``fit``; kept in checkpoints).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

CONFIG_FILE = "training_config.yaml"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def hub_id(name: str | None) -> str | None:
    """``name`` when it reads as a hub id (``org/name``) and is not a local path; else None."""
    if not name or not _HUB_ID.match(name) or Path(name).exists():
        return None
    return name


def _front_matter(facts: dict, license: str | None) -> str:
    lines = ["---", "library_name: transformers"]
    if base := hub_id(facts.get("base_model")):
        lines.append(f"base_model: {base}")
    lines += ["tags:", *(f"- {tag}" for tag in facts["tags"])]
    if datasets := [d for d in facts.get("datasets", []) if hub_id(d)]:
        lines += ["datasets:", *(f"- {d}" for d in datasets)]
    if license:
        lines.append(f"license: {license}")
    if facts.get("pipeline_tag"):
        lines.append(f"pipeline_tag: {facts['pipeline_tag']}")
    return "\n".join([*lines, "---"])


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def _one_line(value: object) -> str:
    """``value`` on one line with its pipes escaped: it stays in its table cell."""
    return " ".join(str(value).split()).replace("|", "\\|")


def code_span(value: object) -> str:
    """``value`` as one inline code span that nothing in it can close, on one line, safe in a table cell: a
    checkpoint's text never becomes Markdown or HTML of the card."""
    text = _one_line(value)
    ticks = "`" * (_longest_backtick_run(text) + 1)
    return f"{ticks} {text} {ticks}" if text.startswith("`") or text.endswith("`") else f"{ticks}{text}{ticks}"


def fenced(text: str, language: str) -> str:
    """``text`` in a fenced code block whose fence is longer than any backtick run inside it."""
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _cell(text: object) -> str:
    return _one_line(html.escape(str(text)))


def _table(rows: dict) -> str:
    body = "\n".join(f"| {_cell(key)} | {value} |" for key, value in rows.items())
    return f"| | |\n| --- | --- |\n{body}"


def model_card(facts: dict, metrics: dict[str, float], license: str | None = None) -> str:
    """The ``README.md`` text of an export.

    Args:
        facts: ``card_facts()`` of the exported module.
        metrics: the final validation metrics (``val/...``), possibly empty.
        license: the SPDX id for the front matter, when known.
    """
    record = facts.get("run_record", {})
    rows = {"base model": code_span(facts.get("base_model")), **facts["table"]}
    if record.get("data"):
        rows["data"] = ", ".join(code_span(d) for d in record["data"])
    parts = [_front_matter({**facts, "datasets": record.get("data", [])}, license),
             f"# {facts['title']}", facts["summary"], _table(rows)]
    if metrics:
        parts += ["## Final validation metrics", _table({k: f"{float(v):.4f}" for k, v in sorted(metrics.items())})]
    parts += ["## How it was trained"]
    if record.get("command"):
        parts.append(fenced(str(record["command"]), "bash"))
    parts.append(f"The resolved config is `{CONFIG_FILE}` in this repository; "
                 f"`python -m bsr_lightning fit --config {CONFIG_FILE}` runs it again."
                 if record.get("config") else "Exported from a checkpoint that holds no training config.")
    parts += ["## Usage", fenced(facts["usage"], "python")]
    return "\n\n".join(parts) + "\n"


def export_files(facts: dict, metrics: dict[str, float] | None = None, license: str | None = None,
                 location: str = "path/to/export", add_special_tokens: bool = True) -> dict[str, str]:
    """The files an export adds beside the weights: ``README.md`` and, when known, the resolved config.

    Args:
        facts: ``card_facts()`` of the exported module.
        metrics: the final validation metrics.
        license: the license for the card's front matter, when known.
        location: where users load it from (a hub repo id or the directory), for the usage snippet.
        add_special_tokens: whether text from the saved chat template is tokenized with special tokens.
    """
    metrics = {k: float(v) for k, v in (metrics or {}).items()}
    usage = facts["usage"].replace("PATH", repr(location)).replace("ADD_SPECIAL_TOKENS", str(add_special_tokens))
    files = {"README.md": model_card({**facts, "usage": usage}, metrics, license)}
    if config := facts.get("run_record", {}).get("config"):
        files[CONFIG_FILE] = config
    return files


def describe(value) -> str:
    """A class-path dict (as stored in hparams) as ``Name(key=value, ...)``; anything else as JSON."""
    if isinstance(value, dict) and "class_path" in value:
        args = ", ".join(f"{k}={v!r}" for k, v in (value.get("init_args") or {}).items())
        return code_span(f"{value['class_path'].rsplit('.', 1)[-1]}({args})")
    return code_span(json.dumps(value))
