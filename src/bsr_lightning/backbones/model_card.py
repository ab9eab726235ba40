"""The model card (``README.md`` with the hub's YAML front matter) and the resolved training config that every export
carries.

A module describes itself with ``card_facts()`` (:meth:`bsr_lightning.base.BackboneModule.card_facts`): the class
that loads the export, tags, a table of what shaped the model (regularizer and weight, loss, ...), and its
``run_record`` (the command, the resolved config and the data, filled in by ``fit``; kept in checkpoints).
"""

from __future__ import annotations

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


def _table(rows: dict) -> str:
    body = "\n".join(f"| {key} | {value} |" for key, value in rows.items())
    return f"| | |\n| --- | --- |\n{body}"


def model_card(facts: dict, metrics: dict[str, float], license: str | None = None) -> str:
    """The ``README.md`` text of an export.

    Args:
        facts: ``card_facts()`` of the exported module.
        metrics: the final validation metrics (``val/...``), possibly empty.
        license: the SPDX id for the front matter, when known.
    """
    record = facts.get("run_record", {})
    rows = {"base model": f"`{facts.get('base_model')}`", **facts["table"]}
    if record.get("data"):
        rows["data"] = ", ".join(f"`{d}`" for d in record["data"])
    parts = [_front_matter({**facts, "datasets": record.get("data", [])}, license),
             f"# {facts['title']}", facts["summary"], _table(rows)]
    if metrics:
        parts += ["## Final validation metrics", _table({k: f"{v:.4f}" for k, v in sorted(metrics.items())})]
    parts += ["## How it was trained"]
    if record.get("command"):
        parts.append(f"```bash\n{record['command']}\n```")
    parts.append(f"The resolved config is `{CONFIG_FILE}` in this repository; "
                 f"`python -m bsr_lightning fit --config {CONFIG_FILE}` runs it again."
                 if record.get("config") else "Exported from a checkpoint that holds no training config.")
    parts += ["## Usage", f"```python\n{facts['usage']}\n```"]
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
        return f"`{value['class_path'].rsplit('.', 1)[-1]}({args})`"
    return f"`{json.dumps(value)}`"
