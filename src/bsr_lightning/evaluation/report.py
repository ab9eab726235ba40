"""Writing evaluation outputs: ``metrics.json``, ``scores.jsonl`` and a Markdown report."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bsr_lightning.files import write_text_atomic


def _flatten(metrics: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        elif not isinstance(value, list):
            rows.append((f"{prefix}{key}", value))
    return rows


def markdown_table(rows: list[tuple[str, object]], header: tuple[str, str] = ("metric", "value")) -> str:
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    return "\n".join(lines + [f"| {k} | {fmt(v)} |" for k, v in rows])


def strict_json(value):
    """``value`` with every NaN or infinity replaced by ``null``: ``metrics.json`` is strict JSON, which has no NaN.
    A ``null`` metric means it is undefined on the data (e.g. accuracy over no pairs, Prior Sets with none present)."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(output_dir: Path, metrics: dict, title: str) -> None:
    """Write ``metrics.json`` (strict JSON: :func:`strict_json`) and ``report.md`` into ``output_dir``
    (``scores.jsonl`` is streamed by the caller)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output_dir / "metrics.json", json.dumps(strict_json(metrics), indent=2, allow_nan=False))
    report = f"# {title}\n\n{markdown_table(_flatten(metrics))}\n"
    # a name from the data that is not Unicode (a lone surrogate) is written as its escape, never a crash
    write_text_atomic(output_dir / "report.md", report.encode("utf-8", "backslashreplace").decode("utf-8"))
