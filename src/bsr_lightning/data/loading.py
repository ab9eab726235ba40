"""Reading raw rows from local files (json, jsonl, jsonl.gz, parquet, csv) or the Hugging Face hub.

Every row comes with ``where``, the place a person can find it: ``file:LINE`` for JSON lines, ``file row N``
otherwise. Malformed JSON lines are reported with their line number instead of aborting inside a parser.
"""

from __future__ import annotations

import glob
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from bsr_lightning.data.formats import RowError

LOCAL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet", ".csv")


def local_files(path: str) -> list[str] | None:
    """The local files named by ``path`` (a file, a glob, a directory or a comma-separated list), or None when
    ``path`` names no local file (so it is taken as a hub dataset id)."""
    files: list[str] = []
    for part in path.split(","):
        part = part.strip()
        if Path(part).is_dir():
            files += sorted(str(p) for p in Path(part).iterdir() if p.name.endswith(LOCAL_SUFFIXES))
        else:
            files += sorted(glob.glob(part))
    if not files:
        if any(path.endswith(s) for s in LOCAL_SUFFIXES):
            raise FileNotFoundError(f"Preference data file not found: {path} (cwd: {Path.cwd()}).")
        return None
    return files


def iter_raw_rows(path: str, name: str | None = None, data_dir: str | None = None, split: str = "train"):
    """Yield ``(where, row_or_RowError)`` for every row of local files or a hub dataset split."""
    files = local_files(path)
    if files is None:
        yield from _iter_hub(path, name, data_dir, split)
        return
    for file in files:
        if file.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
            yield from _iter_json(file)
        else:
            yield from _iter_tabular(file)


def _open_text(file: str):
    return gzip.open(file, "rt", encoding="utf-8") if file.endswith(".gz") else open(file, encoding="utf-8")


def _iter_json(file: str) -> Iterator[tuple[str, dict | RowError]]:
    with _open_text(file) as handle:
        first = handle.read(1)
        while first and first.isspace():
            first = handle.read(1)
        handle.seek(0)
        if first == "[":  # one JSON array
            yield from _iter_json_array(file, handle)
            return
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{file}:{line_no}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as err:
                yield where, RowError(where, f"malformed JSON ({err.msg} at column {err.colno})")


def _iter_json_array(file: str, handle) -> Iterator[tuple[str, dict | RowError]]:
    try:
        rows = json.load(handle)
    except json.JSONDecodeError as err:
        raise RowError(f"{file}:{err.lineno}", f"malformed JSON ({err.msg} at column {err.colno})") from err
    for index, row in enumerate(rows):
        yield f"{file} row {index}", row


def _iter_tabular(file: str) -> Iterator[tuple[str, dict]]:
    import datasets

    kind = "parquet" if file.endswith(".parquet") else "csv"
    dataset = datasets.load_dataset(kind, data_files=file, split="train")
    for index, row in enumerate(dataset):
        yield f"{file} row {index}", row


def _iter_hub(path: str, name: str | None, data_dir: str | None, split: str) -> Iterator[tuple[str, dict]]:
    import datasets

    dataset = datasets.load_dataset(path, name, data_dir=data_dir, split=split)
    for index, row in enumerate(dataset):
        yield f"{path}[{split}] row {index}", row
