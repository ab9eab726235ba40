"""Writing files the way users expect: modes that follow the umask, atomic replacement, and export directories
that never lose a file the package did not write. A leaf module."""

from __future__ import annotations

import hashlib
import json
import os
import stat
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


def save_figure(fig, path: str | Path, dpi: int = 100) -> None:
    """Save a matplotlib figure through :func:`atomic_write` (the format from ``path``'s suffix)."""
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi)


def check_export_dir(output_dir: str | Path, overwrite: bool = False) -> dict[str, str]:
    """Refuse to export into a non-empty directory that holds files no earlier export wrote (per its manifest's
    hashes: :func:`owned_files`), unless ``overwrite``. Returns the earlier export's owned files (hashed once)."""
    path = Path(output_dir)
    if not path.exists():
        return {}
    if not path.is_dir():
        raise UserError(f"export directory {path} is a file; choose a directory.")
    _check_manifest_is_a_file(path, MANIFEST)
    owned = owned_files(path, MANIFEST)
    tops = {name.split("/", 1)[0] for name in owned}
    foreign = sorted(p.name for p in path.iterdir() if p.name != MANIFEST and p.name not in tops)
    if not foreign or overwrite:
        return owned
    raise UserError(f"export directory {path} is not empty: {len(foreign)} file(s) there no export wrote (e.g. "
                    f"{foreign[0]!r}); "
                    "choose an empty or new directory, or pass --overwrite (export callback: `overwrite: true`) to "
                    "write into it: files the export does not write are kept.")


OUTPUTS = ".bsr_lightning_outputs.json"  # in each output folder of evaluate, scenarios, diagnose, sweep


def _read_manifest(directory: Path, manifest: str) -> dict:
    """A manifest's JSON object; ``{}`` when it is missing, unreadable or not an object (it then vouches for
    nothing)."""
    try:
        data = json.loads((directory / manifest).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _check_manifest_is_a_file(directory: Path, manifest: str) -> None:
    if (directory / manifest).exists() and not (directory / manifest).is_file():
        raise UserError(f"{directory}: {manifest} there is not a file; this package did not write it. Remove it, or "
                        "choose another directory.")


def export_run(output_dir: str | Path) -> str | None:
    """The command recorded in an earlier export's manifest (None without one, or when it recorded none)."""
    run = _read_manifest(Path(output_dir), MANIFEST).get("run")
    return run if isinstance(run, str) else None


def export_run_id(output_dir: str | Path) -> str | None:
    """The training run's identity recorded in an earlier export's manifest (None without one)."""
    run_id = _read_manifest(Path(output_dir), MANIFEST).get("run_id")
    return run_id if isinstance(run_id, str) else None


def sha256_of(path: str | Path) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _inside(directory: Path, name: object) -> Path | None:
    """``directory / name`` when ``name`` is a plain relative path to something that exists inside ``directory``;
    else None (a name too long or holding a NUL byte cannot be one)."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        return None
    path = directory / name
    try:
        os.lstat(path)
        path.resolve().relative_to(directory.resolve())
    except (OSError, ValueError):  # missing, unnamable, or a symlink leading out
        return None
    return path


def file_identity(path: str | Path) -> str:
    """``sha256:device:inode`` of a regular file: its bytes and the very file the package wrote (``os.replace`` and
    renames keep the inode), so a manifest forged beside a user's file with that file's hash (an empty
    ``.gitkeep``, say) vouches for nothing."""
    st = os.lstat(path)
    return f"{sha256_of(path)}:{st.st_dev}:{st.st_ino}"


def tree_identity(path: str | Path) -> str:
    """A digest of a folder the package made: the device and inode of it and of every entry below it, with each
    entry's relative name, type, size and modification time. Any change inside (a file added, edited, replaced)
    changes it."""
    root = Path(path)
    st = os.lstat(root)
    digest = hashlib.sha256(f"{st.st_dev}:{st.st_ino}".encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            entry = Path(dirpath) / name
            st = os.lstat(entry)
            digest.update(f"\0{entry.relative_to(root)}:{st.st_mode}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
                          .encode(errors="surrogateescape"))
    return digest.hexdigest()


def _regular_file(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


def owned_files(directory: str | Path, manifest: str = OUTPUTS) -> dict[str, str]:
    """``{name: identity}`` of the files in ``directory`` that the package wrote and nobody changed since: names in
    its manifest that are relative, inside the folder, regular files with one link, and whose bytes and inode are as
    recorded (:func:`file_identity`). A forged or stale manifest vouches for nothing else (those files are the
    user's)."""
    directory = Path(directory)
    recorded = _read_manifest(directory, manifest).get("files", {})
    if not isinstance(recorded, dict):
        return {}  # an old manifest without hashes: nothing is known to be ours
    owned = {}
    for name, identity in recorded.items():
        path = _inside(directory, name)
        if path is not None and isinstance(identity, str) and _regular_file(path) and file_identity(path) == identity:
            owned[name] = identity
    return owned


def claim_output_dir(output_dir: str | Path, outputs: list[str], inputs: list[str | Path] = (),
                     overwrite: bool = False, command: str = "this command") -> Path:
    """Check, before any work, that writing ``outputs`` into ``output_dir`` loses nothing of the user's. The folder
    is not created here: a run that fails before writing leaves none behind.

    An output that would replace one of the ``inputs`` is refused always; a folder that holds anything this package
    did not write (per :func:`owned_files`) is refused unless ``overwrite`` (and then only ``outputs`` are replaced).
    Stops with a :class:`UserError` that names the file and what to do.
    """
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"output_dir {path} is a file; choose a directory.")
    if path.is_symlink() and not path.exists():
        raise UserError(f"output_dir {path} is a link to {os.readlink(path)}, which does not exist; choose a folder.")
    for name in outputs:  # a link is replaced, never written through (atomic_write); a folder cannot be
        if (path / name).is_dir() and not (path / name).is_symlink():
            raise UserError(f"{path / name} is a folder, where {command} writes a file; remove it, or choose "
                            "another --output_dir.")
    targets = {(path / name).resolve() for name in outputs}
    for source in inputs:
        if Path(source).exists() and Path(source).resolve() in targets:
            raise UserError(f"{command} would write its output over its input {source}; choose another "
                            "--output_dir.")
    _check_manifest_is_a_file(path, OUTPUTS)
    if path.is_dir() and not overwrite:
        ours = {OUTPUTS, *owned_files(path), *_recorded_dirs(path)}  # top-level names only
        foreign = sorted(p.name for p in path.iterdir() if p.name not in ours)
        if foreign:
            raise UserError(f"output_dir {path} holds {len(foreign)} file(s) {command} did not write (e.g. "
                            f"{foreign[0]!r}); choose a new or empty directory, or pass --overwrite to write into it "
                            f"(only {', '.join(outputs)} are replaced; other files are kept).")
    return path


def _recorded_dirs(directory: Path) -> dict[str, str]:
    """The sub-folders a command recorded making and nobody changed since: relative names inside ``directory`` that
    are real folders (not links) whose :func:`tree_identity` is as recorded. Anything else (a file listed as a
    folder, a list without digests) vouches for nothing."""
    dirs = _read_manifest(directory, OUTPUTS).get("dirs", {})
    if not isinstance(dirs, dict):
        return {}
    owned = {}
    for name, identity in dirs.items():
        path = _inside(directory, name)
        if path is not None and path.is_dir() and not path.is_symlink() and tree_identity(path) == identity:
            owned[name] = identity
    return owned


def record_outputs(output_dir: str | Path, outputs: list[str], dirs: list[str] = ()) -> None:
    """Add ``outputs`` (files written into ``output_dir``) with their identities, and ``dirs`` (sub-folders the
    command made) with their digests, to the folder's manifest, so a later run may replace them and nothing else."""
    path = Path(output_dir)
    files = {**owned_files(path), **{name: file_identity(path / name) for name in outputs
                                     if _regular_file(path / name)}}
    folders = {**_recorded_dirs(path), **{name: tree_identity(path / name) for name in dirs
                                          if (path / name).is_dir() and not (path / name).is_symlink()}}
    write_text_atomic(path / OUTPUTS, json.dumps({"files": files, "dirs": folders}, indent=1))
