"""Sphinx configuration of the bsr_lightning manual: ``make docs`` builds it into ``build/docs`` offline, with every
warning (a broken link, a missing reference, a page outside the toctree) an error."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "_ext"), str(HERE.parent / "src")]

project = "bsr_lightning"
author = "the bsr_lightning authors"
copyright = "2026, the bsr_lightning authors"  # noqa: A001 (Sphinx's name)
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "md_pages"]
root_doc = "index"
exclude_patterns = ["_build", "_ext", "reproduction/results.md", "reproduction/length/results.md"]
html_theme = "alabaster"
html_theme_options = {"description": "Robust reward models and RLHF with PyTorch Lightning", "fixed_sidebar": True,
                      "page_width": "1240px", "sidebar_width": "250px"}
html_static_path: list[str] = []
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
suppress_warnings = ["ref.python"]  # type hints that name torch/transformers classes this offline build cannot link
autodoc_inherit_docstrings = False  # Lightning's own docstrings use roles of its site (paramref, its labels)
