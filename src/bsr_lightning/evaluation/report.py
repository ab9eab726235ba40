"""Writing evaluation outputs: ``metrics.json``, ``scores.jsonl`` and a Markdown report."""

from __future__ import annotations

import json
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


def write_report(output_dir: Path, metrics: dict, title: str) -> None:
    """Write ``metrics.json`` and ``report.md`` into ``output_dir`` (``scores.jsonl`` is streamed by the caller)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output_dir / "metrics.json", json.dumps(metrics, indent=2))
    write_text_atomic(output_dir / "report.md", f"# {title}\n\n{markdown_table(_flatten(metrics))}\n")
