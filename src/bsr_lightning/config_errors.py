"""Config mistakes in one short message, with the closest valid key, instead of the parser's usage and Union dump.

jsonargparse answers a typo in a nested ``init_args`` key (``regularizer.init_args.wieght``) with about 50 lines:
the whole usage, then every Union subtype it tried. :class:`ShortErrorParser` prints instead where the mistake is,
what was given, the closest valid key ("did you mean 'weight'?") and the command that lists the options, and exits
with status 2 like every other user error.
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys

from lightning.pytorch.cli import LightningArgumentParser

PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
CLASS_PATH = re.compile(r"Problem with given class_path '([^']+)'")
UNKNOWN = re.compile(r"(?:Option|Key) '([^']+)' (?:is not accepted|is not expected)|[Uu]nrecognized arguments: (\S+)")


def init_parameters(class_path: str) -> list[str]:
    """The ``__init__`` parameter names of ``class_path``; [] when unknown. Only a module the parser already imported
    while checking the config is read: a message never makes anything import."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(sys.modules[module], name)
        return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]
    except (KeyError, AttributeError, TypeError, ValueError):
        return []


def option_names(parser) -> list[str]:
    """Every ``--a.b`` option of ``parser`` without its dashes."""
    return [s[2:] for action in parser._actions for s in action.option_strings if s.startswith("--")]


def short_message(message: str, parser) -> str:
    """One short block: where, what was given, the closest valid key, and where the options are listed."""
    unknown = UNKNOWN.search(message)
    if unknown is None:
        first = [line for line in message.splitlines() if line.strip()][:6]
        return "\n".join(first)
    key = (unknown.group(1) or unknown.group(2)).lstrip("-")
    before = message[: unknown.start()]
    path = ".".join(k for k in PARSER_KEY.findall(before))
    classes = CLASS_PATH.findall(before)
    if classes:
        candidates, owner = init_parameters(classes[-1]), classes[-1]
        where = f"{path} ({owner})" if path else owner
    else:
        candidates, where = option_names(parser), path or "the command line"
    close = difflib.get_close_matches(key.split(".")[-1] if classes else key, candidates, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else "."
    lines = [f"{where}: no option '{key}'{hint}"]
    if classes and candidates:
        lines.append(f"{classes[-1].rsplit('.', 1)[-1]} takes: {', '.join(candidates)}.")
    lines.append(f"`{parser.prog.replace(' [options]', '')} --help` lists every option.")
    return "\n".join(lines)


class ShortErrorParser(LightningArgumentParser):
    """LightningCLI's parser, with config mistakes answered by :func:`short_message` (status 2, no usage dump)."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:
            return super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        print(f"bsr_lightning: error: {short_message(message, parser)}", file=sys.stderr)
        sys.exit(2)
