"""A chat template from a model folder is Jinja code that every scored conversation runs. Before it is used, it is
rendered once on a small conversation in a separate process, sandboxed as transformers renders it, under a time limit
and a memory limit; a template that exceeds them, or writes more than :data:`MAX_OUTPUT` characters for five short
messages, is refused with what it did (nested ``range(100000)`` loops, ``'a' * 300000000``), before any data is read.

The probe imports only jinja2, in isolated mode (``python -I``: no working directory or user site on ``sys.path``)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from bsr_lightning.errors import ConfigError

SECONDS = 10.0
MEMORY_BYTES = 2**30
MAX_OUTPUT = 1_000_000
_checked: set[str] = set()

PROBE = r"""
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

class Generation(Extension):  # transformers' {% generation %} ... {% endgeneration %}, rendered as its body
    tags = {"generation"}
    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
env.globals.update(raise_exception=lambda message: "", strftime_now=lambda fmt: "")
env.filters["tojson"] = lambda value, **kw: json.dumps(value)
try:
    template = env.from_string(sys.stdin.read())
except Exception:
    print(-1)  # not compilable here: transformers' own render reports it
    sys.exit(0)
roles = ["system", "user", "assistant", "user", "assistant"]
messages = [{"role": role, "content": "Hello there."} for role in roles]
longest = -1
for conversation in (messages, messages[1:]):
    for generation in (False, True):
        try:
            text = template.render(messages=conversation, add_generation_prompt=generation, bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
        except MemoryError:
            raise
        except Exception:
            continue
        longest = max(longest, len(text))
print(longest)
"""


def check_template(template: str | dict | None, where: str) -> None:
    """Refuse (:class:`ConfigError`) a chat template (or each of a dict of named ones) that takes over
    :data:`SECONDS`, needs over :data:`MEMORY_BYTES` or writes over :data:`MAX_OUTPUT` characters to render five
    short messages. Each template text is probed once per process."""
    texts = template.values() if isinstance(template, dict) else [template]
    for text in texts:
        if isinstance(text, str) and (key := hashlib.sha256(text.encode()).hexdigest()) not in _checked:
            _probe(text, where)
            _checked.add(key)


def _probe(text: str, where: str) -> None:
    refuse = f"{where}: its chat template"
    try:
        done = subprocess.run([sys.executable, "-I", "-c", PROBE, str(MEMORY_BYTES)], input=text, text=True,
                              capture_output=True, timeout=SECONDS)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{refuse} did not finish rendering five short messages within {SECONDS:g} s (a loop "
                          "without end?); it is refused. Give another with backbone.chat_template.") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise ConfigError(f"{refuse} failed to render five short messages within {MEMORY_BYTES // 2**30} GiB of "
                          f"memory ({last}); it is refused. Give another with backbone.chat_template.")
    written = int(done.stdout.strip() or -1)
    if written > MAX_OUTPUT:
        raise ConfigError(f"{refuse} wrote {written:,} characters for five short messages (at most {MAX_OUTPUT:,}); "
                          "it is refused. Give another with backbone.chat_template.")
