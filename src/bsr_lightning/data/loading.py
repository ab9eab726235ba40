"""Reading raw rows from local files (json, jsonl, jsonl.gz, parquet, csv) or the Hugging Face hub.

Every row comes with ``where``, the place a person can find it: ``file:LINE`` for JSON lines and CSV, ``file row N``
otherwise. Malformed JSON and non-UTF-8 lines come back as :class:`RowError` rows (counted under ``bad_rows: skip``);
a truncated compressed file stops with a :class:`DataError` naming the line it reached.
"""

from __future__ import annotations

import csv
import glob
import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

from bsr_lightning.errors import DataError, PathNotFound, RowError

LOCAL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet", ".csv")
MAX_ROW_BYTES = 64 * 2**20
"""The longest line (JSON lines) or CSV cell read: a longer one is a bad row, read past in small pieces, so a
1 GB line in a 1 MB ``.jsonl.gz`` costs no more memory than this."""
MAX_ARRAY_BYTES = 2**30
"""The largest file holding one JSON array (read whole); write larger data as JSON lines."""


def local_files(path: str) -> list[str] | None:
    """The local files named by ``path`` (a file, a directory, a glob or a comma-separated list), or None when
    ``path`` names no local file (so it is taken as a hub dataset id).

    Names are literal: an existing file is read as named (``d[1].jsonl`` is that file, never ``d1.jsonl``). Only a
    name that does not exist and holds ``*`` or ``?`` is a glob, and brackets in it stay literal characters."""
    # an existing name is literal, commas and all ('pairs,v2.jsonl'); otherwise a comma-separated list
    parts = [path] if Path(path).exists() else [part.strip() for part in path.split(",")]
    files: list[str] = []
    for part in parts:
        found = _files_named(part)
        if not found and len(parts) > 1:  # one name of a list that names nothing: never skipped
            raise PathNotFound(f"data file not found: {part!r}, in the list {path!r} (cwd: {Path.cwd()}); fix or "
                               f"remove it (data files end in one of {', '.join(LOCAL_SUFFIXES)}).")
        files += found
    if not files:
        if "*" in path or "?" in path:  # a glob is never a hub id
            matched = sorted(glob.glob(path.replace("[", "[[]")))
            raise PathNotFound(f"--data {path!r} matches no data file (cwd: {Path.cwd()})" + (
                f"; it matches {matched[:5]}, none ending in {', '.join(LOCAL_SUFFIXES)}" if matched else "") + ".")
        if any(path.endswith(s) for s in LOCAL_SUFFIXES) or _looks_local(path):
            raise PathNotFound(f"data file not found: {path} (cwd: {Path.cwd()}); check `data.path` (or --data) and "
                               f"its suffix (one of {', '.join(LOCAL_SUFFIXES)}).")
        return None
    return files


def _files_named(part: str) -> list[str]:
    """The data files one name gives: a directory's, the file itself, or a glob's matches (brackets literal)."""
    if Path(part).is_dir():
        found = sorted(str(p) for p in Path(part).iterdir() if p.name.endswith(LOCAL_SUFFIXES))
        if not found:
            raise DataError(f"directory {part} holds no data files ({', '.join(LOCAL_SUFFIXES)}); give a file or a "
                            "directory of them.")
        return found
    if Path(part).exists():
        if not part.endswith(LOCAL_SUFFIXES):  # a pipe from <(...), a notes file: the reader goes by the suffix
            raise DataError(f"{part}: not a data file by its name; data files end in one of "
                            f"{', '.join(LOCAL_SUFFIXES)} (write piped data to such a file first).")
        return [part]
    if "*" in part or "?" in part:
        return sorted(f for f in glob.glob(part.replace("[", "[[]")) if f.endswith(LOCAL_SUFFIXES))
    return []


def _looks_local(path: str) -> bool:
    """A path, not a hub dataset id (``org/name``): it starts like a path, has more than one ``/``, or its last part
    has a file suffix."""
    return (path.startswith((".", "/", "~")) or path.count("/") > 1 or "\\" in path
            or "." in Path(path).name.strip("."))


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


_CORRUPT = (EOFError, gzip.BadGzipFile, zlib.error)  # a truncated or damaged compressed stream


def _corrupt(file: str, err: Exception, line_no: int | None = None) -> DataError:
    where = f"{file}:{line_no}" if line_no is not None else file
    return DataError(f"{where}: the compressed file ends early or is corrupt ({err}); download or compress it again."
                     + (" Rows before this line were read." if line_no is not None else ""))


def _open_binary(file: str):
    return gzip.open(file, "rb") if file.endswith(".gz") else open(file, "rb")


def _lines(file: str) -> Iterator[tuple[int, bytes | RowError]]:
    """``(line number, raw bytes)``, or a :class:`RowError` for a line over :data:`MAX_ROW_BYTES` (read past, never
    held); a truncated or corrupt gzip stream stops with a :class:`DataError` naming the line it reached."""
    line_no = 0
    try:
        with _open_binary(file) as handle:
            while line := handle.readline(MAX_ROW_BYTES + 1):
                line_no += 1
                if len(line) <= MAX_ROW_BYTES or line.endswith(b"\n"):
                    yield line_no, line
                    continue
                while (rest := handle.readline(2**20)) and not rest.endswith(b"\n"):
                    pass
                yield line_no, RowError(f"{file}:{line_no}", f"a line over {MAX_ROW_BYTES // 2**20} MiB, longer "
                                                             "than any row; check the file (one row per line)")
    except _CORRUPT as err:
        raise _corrupt(file, err, line_no + 1) from None


def _decode(raw: bytes, line_no: int, where: str) -> str | RowError:
    try:
        return raw.decode("utf-8-sig" if line_no == 1 else "utf-8")  # a UTF-8 byte-order mark is accepted
    except UnicodeDecodeError as err:
        return RowError(where, f"not UTF-8 text (byte {raw[err.start]:#04x} at column {err.start + 1}); save the file "
                               "as UTF-8")


def _iter_json(file: str) -> Iterator[tuple[str, dict | RowError]]:
    try:
        with _open_binary(file) as handle:
            head = handle.read(4096).decode("utf-8-sig", errors="replace").lstrip()
    except _CORRUPT as err:
        raise _corrupt(file, err) from None
    if head.startswith("["):  # one JSON array
        yield from _iter_json_array(file)
        return
    for line_no, raw in _lines(file):
        where = f"{file}:{line_no}"
        line = raw if isinstance(raw, RowError) else _decode(raw, line_no, where)
        if isinstance(line, RowError):
            yield where, line
            continue
        if not line.strip():
            continue
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as err:
            yield where, RowError(where, f"malformed JSON ({err.msg} at column {err.colno})")
        except RecursionError:
            yield where, RowError(where, "JSON nested too deep to be a row (arrays or objects inside each other "
                                         "thousands of levels down)")


def _iter_json_array(file: str) -> Iterator[tuple[str, dict | RowError]]:
    try:
        with _open_binary(file) as handle:
            text = handle.read(MAX_ARRAY_BYTES + 1)
        if len(text) > MAX_ARRAY_BYTES:
            raise DataError(f"{file}: one JSON array over {MAX_ARRAY_BYTES // 2**30} GiB; write it as JSON lines "
                            "(.jsonl, one row per line), which are read a row at a time.")
        rows = json.loads(text.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise DataError(f"{file}: not UTF-8 text (byte offset {err.start}); save the file as UTF-8.") from None
    except _CORRUPT as err:
        raise _corrupt(file, err) from None
    except json.JSONDecodeError as err:
        raise RowError(f"{file}:{err.lineno}", f"malformed JSON ({err.msg} at column {err.colno})") from err
    except RecursionError:
        raise DataError(f"{file}: JSON nested too deep to be a list of rows.") from None
    for index, row in enumerate(rows):
        yield f"{file} row {index}", row


def _iter_tabular(file: str) -> Iterator[tuple[str, dict | RowError]]:
    if file.endswith(".csv"):
        yield from _iter_csv(file)
        return
    import datasets
    import pyarrow

    try:
        dataset = datasets.load_dataset("parquet", data_files=file, split="train")
    except (pyarrow.ArrowException, datasets.exceptions.DatasetGenerationError) as err:
        reason = str(err.__cause__ or err).splitlines()[0][:200]
        raise DataError(f"{file}: not a readable parquet file ({reason}); write it again, or use JSON lines.") from None
    for index, row in enumerate(dataset):
        yield f"{file} row {index}", row


def _iter_csv(file: str) -> Iterator[tuple[str, dict | RowError]]:
    """CSV rows as strings (no type guessing: the answer ``42`` stays the text "42"), located by the file's line.
    Cells up to :data:`MAX_ROW_BYTES` are read (Python's csv stops at 131,072 characters by default): long texts
    are for the length policy to count, not for the reader to refuse."""
    csv.field_size_limit(MAX_ROW_BYTES)
    start = 2  # the header is line 1
    try:
        with open(file, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, restkey=_EXTRA, restval=_MISSING)
            for row in reader:
                yield f"{file}:{start}", _csv_row(f"{file}:{start}", row, len(reader.fieldnames or []))
                start = reader.line_num + 1
    except UnicodeDecodeError as err:
        raise DataError(f"{file}: not UTF-8 text (byte offset {err.start}); save the file as UTF-8.") from None
    except csv.Error as err:  # a cell over the limit; the reader cannot go on past it
        raise DataError(f"{file}:{start}: {err} ({MAX_ROW_BYTES // 2**20} MiB); check the file's quoting (an "
                        "unclosed quote makes the rest of the file one cell).") from None


_EXTRA, _MISSING = object(), object()  # DictReader's markers for a row with too many or too few fields


def _csv_row(where: str, row: dict, width: int) -> dict | RowError:
    """The row's cells, or a :class:`RowError` when its field count differs from the header's (an unquoted comma
    would otherwise shift its columns silently)."""
    extra = len(row.get(_EXTRA, []))
    missing = sum(value is _MISSING for value in row.values())
    if extra or missing:
        count = width + extra - missing
        return RowError(where, f"{count} fields where the header has {width}; quote cells that hold commas")
    return row


def _iter_hub(path: str, name: str | None, data_dir: str | None, split: str) -> Iterator[tuple[str, dict]]:
    import datasets

    try:
        dataset = datasets.load_dataset(path, name, data_dir=data_dir, split=split)
    except (OSError, ValueError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as err:
        offline = " The hub is offline here (HF_HUB_OFFLINE=1): download it once online, or give local files." if \
            datasets.config.HF_HUB_OFFLINE else ""
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise PathNotFound(f"dataset {path!r} (split {split!r}) cannot be loaded: {reason}.{offline}") from None
    for index, row in enumerate(dataset):
        yield f"{path}[{split}] row {index}", row
