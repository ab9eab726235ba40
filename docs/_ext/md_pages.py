"""Markdown pages in the Sphinx site, rendered by Python-Markdown (the ``markdown`` package).

The manual's pages stay Markdown, readable on GitHub as they are, and become pages of the site: the first ``#``
heading is the page title (what the toctree shows), the rest is Python-Markdown's HTML (tables, fenced code), and each
image line ``![alt](path)`` becomes an image node, so Sphinx copies the picture into the site. A link to another
page (``[text](other.md)``) points at its HTML page; a link to a page or image that does not exist is a warning,
which ``make docs`` (``-W``) turns into an error.
"""

from __future__ import annotations

import re
from pathlib import Path

import markdown
from docutils import nodes
from sphinx.parsers import Parser
from sphinx.util import logging

log = logging.getLogger(__name__)
IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)\s*$", re.M)
LINK = re.compile(r"\]\(([^)\s#]+)(#[^)\s]*)?\)")


class MarkdownParser(Parser):
    """Parse a ``.md`` page into a section (its title) holding raw HTML and image nodes."""

    supported = ("markdown",)

    def parse(self, inputstring: str, document: nodes.document) -> None:
        source = Path(document["source"])
        title, body = _split_title(inputstring)
        section = nodes.section(ids=[nodes.make_id(title)], names=[nodes.fully_normalize_name(title)])
        section += nodes.title(title, title)
        pieces = IMAGE.split(body)  # text, alt, path, text, alt, path, ...
        for i in range(0, len(pieces), 3):
            if pieces[i].strip():
                html = markdown.markdown(_checked_links(pieces[i], source), extensions=["tables", "fenced_code"])
                section += nodes.raw("", html, format="html")
            if i + 2 < len(pieces):
                alt, path = pieces[i + 1], pieces[i + 2]
                if not (source.parent / path).is_file():
                    log.warning(f"{source.name}: image {path} does not exist", location=str(source))
                section += nodes.image(uri=path, alt=alt)
        document += section


def _split_title(text: str) -> tuple[str, str]:
    match = re.search(r"^# (.+)$", text, re.M)
    if match is None:
        return "Untitled", text
    return match.group(1).strip(), text[match.end():]


def _checked_links(text: str, source: Path) -> str:
    """``other.md`` links point at ``other.html``; a relative link to a missing file is a warning."""

    def fix(match: re.Match) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        if "://" in target or target.startswith("mailto:"):
            return match.group(0)
        if not (source.parent / target).exists():
            log.warning(f"{source.name}: link to {target}, which does not exist", location=str(source))
        if target.endswith(".md"):
            target = target[:-3] + ".html"
        return f"]({target}{anchor})"

    return LINK.sub(fix, text)


def setup(app) -> dict:
    app.add_source_suffix(".md", "markdown")
    app.add_source_parser(MarkdownParser)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
