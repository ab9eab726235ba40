"""Upstream benchmark code, read from the PyPI wheel that ``make install`` downloads into ``.venv/upstream``.

rewardbench 0.1.4 pins ``transformers==4.51.0`` and imports fastchat and every custom model at package import, so
it cannot be imported beside transformers 5. Its functions are pure, though: we compile the ones we compare with
straight from the wheel's source (``function``) and run them unchanged.
"""

from __future__ import annotations

import ast
import sys
import zipfile
from pathlib import Path

import pytest

REWARDBENCH_WHEEL = Path(sys.prefix) / "upstream" / "rewardbench-0.1.4-py3-none-any.whl"


def source(member: str) -> str:
    """The text of ``member`` (e.g. ``rewardbench/utils.py``) in the rewardbench wheel."""
    if not REWARDBENCH_WHEEL.is_file():
        pytest.fail(f"{REWARDBENCH_WHEEL} is missing; `make install` downloads it (pip download rewardbench==0.1.4)")
    with zipfile.ZipFile(REWARDBENCH_WHEEL) as wheel:
        return wheel.read(member).decode()


def function(member: str, name: str, namespace: dict | None = None):
    """Compile the top-level function or class ``name`` of ``member`` alone, with ``namespace`` as its globals."""
    tree = ast.parse(source(member))
    node = next(n for n in tree.body if getattr(n, "name", None) == name)
    scope = dict(namespace or {})
    exec(compile(ast.Module(body=[node], type_ignores=[]), f"{REWARDBENCH_WHEEL.name}/{member}", "exec"), scope)
    return scope[name]


def constants() -> dict:
    """``rewardbench/constants.py``'s names (it imports nothing)."""
    scope: dict = {}
    exec(compile(source("rewardbench/constants.py"), "rewardbench/constants.py", "exec"), scope)
    return scope
