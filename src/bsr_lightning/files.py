"""Writing files the way users expect: modes that follow the umask, atomic replacement, and export directories
that never lose a file the package did not write. A leaf module."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bsr_lightning.errors import UserError

MANIFEST = ".bsr_lightning_export.json"  # in each export directory: the files the export wrote


def umask() -> int:
    """The process's umask (read without changing it for longer than the call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str | Path, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have (0666/0777 minus the umask): ``mkstemp`` and
    ``mkdtemp`` create 0600/0700."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator:
    """A file handle on a temporary file beside ``path``; on success it is flushed, fsynced, given the umask's mode
    and renamed onto ``path`` (a crash leaves the previous file intact), on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        apply_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as handle:
        handle.write(text)


def check_export_dir(output_dir: str | Path, overwrite: bool = False) -> None:
    """Refuse to export into a non-empty directory that no earlier export wrote, unless ``overwrite``."""
    path = Path(output_dir)
    if not path.exists():
        return
    if not path.is_dir():
        raise UserError(f"export directory {path} is a file; choose a directory.")
    entries = sorted(p.name for p in path.iterdir())
    if not entries or MANIFEST in entries or overwrite:
        return
    raise UserError(f"export directory {path} is not empty ({len(entries)} entries, e.g. {entries[0]!r}) and no "
                    "export wrote it; choose an empty or new directory, or pass --overwrite (export callback: "
                    "`overwrite: true`) to write into it: files the export does not write are kept.")
