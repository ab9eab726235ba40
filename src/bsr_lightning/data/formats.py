"""Preference rows in any of the supported formats, normalized to :class:`PreferencePair` with clear errors.

Formats (detected per row):

(a) ``chosen``/``rejected`` full transcripts, HH-RLHF style (``"\\n\\nHuman: ...\\n\\nAssistant: ..."``): the shared
    turns become the prompt, the rest the completions;
(b) ``prompt``/``chosen``/``rejected`` strings (the prompt may itself be an HH transcript);
(c) conversational: ``chosen``/``rejected`` (and optionally ``prompt``) lists of ``{"role", "content"}`` messages.

An optional numeric ``margin`` column is kept for margin losses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from bsr_lightning.errors import RowError

Message = dict[str, str]
ROLES = ("system", "user", "assistant")
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")
_HH_ROLE = {"Human": "user", "Assistant": "assistant"}


@dataclass
class PreferencePair:
    """One comparison: a shared prompt and two completions, each a list of chat messages."""

    row_id: int
    where: str
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    margin: float | None = None
    extra: dict = field(default_factory=dict)


def parse_hh(text: str) -> list[Message] | None:
    """Split an HH-RLHF transcript into messages; None unless the text is one by its own format: it starts with
    ``"\n\nHuman:"``, as every HH-RLHF transcript does (a text that merely begins with "Human:" is text)."""
    if not text.startswith("\n\nHuman:"):
        return None
    parts = _HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        return None
    turns = zip(parts[1::2], parts[2::2], strict=True)
    return [{"role": _HH_ROLE[role], "content": content.strip()} for role, content in turns]


def _check_messages(value, column: str, where: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise RowError(where, f"column '{column}' must be a non-empty list of messages, got {_describe(value)}")
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not {"role", "content"} <= set(message):
            raise RowError(where, f"'{column}'[{i}] must be a dict with 'role' and 'content', got {_describe(message)}")
        if message["role"] not in ROLES:
            raise RowError(where, f"'{column}'[{i}] has role {message['role']!r}; expected one of {ROLES}")
        check_text(message["content"], f"{column}[{i}].content", where)
    return [{"role": m["role"], "content": m["content"]} for m in value]


def check_text(value, column: str, where: str) -> str:
    if not isinstance(value, str):
        raise RowError(where, f"column '{column}' must be a string, got {_describe(value)}")
    if not value.strip():
        raise RowError(where, f"empty value in column '{column}'")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RowError(where, f"column '{column}' holds a lone surrogate ({value[err.start]!r} at character "
                              f"{err.start + 1}), which is not Unicode text; fix the row's \\u escapes") from None
    return value


def _describe(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def as_messages(value, column: str, where: str, role: str) -> list[Message]:
    """A column's value as messages: message lists pass through; a string is one message of exactly that text
    (nothing stripped: a template may join it to the next), unless it is an HH-RLHF transcript by its own format
    (:func:`parse_hh`)."""
    if isinstance(value, list):
        return _check_messages(value, column, where)
    text = check_text(value, column, where)
    return parse_hh(text) or [{"role": role, "content": text}]


def _split_common_prefix(chosen: list[Message], rejected: list[Message]) -> tuple[list[Message], ...]:
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    return chosen[:n], chosen[n:], rejected[n:]


def check_turn_order(messages: list[Message], column: str, where: str) -> None:
    """An optional system message first, then user and assistant turns alternating, starting with the user."""
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        raise RowError(where, f"'{column}': a system message may only come first")
    turns = roles[1:] if roles and roles[0] == "system" else roles
    for i, role in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            order = " -> ".join(roles)
            raise RowError(where, f"'{column}': turns must alternate user -> assistant, starting with the user; got "
                                  f"{order}")


def check_scored_conversation(messages: list[Message], column: str, where: str) -> None:
    """The rule every scored conversation follows, in training, ``evaluate`` and ``serve`` alike: turns in order
    (:func:`check_turn_order`) and the last one the assistant's response to score."""
    if messages[-1]["role"] != "assistant":
        raise RowError(where, f"'{column}' must end with an assistant message, ends with '{messages[-1]['role']}'")
    check_turn_order(messages, column, where)


def _check_roles(prompt: list[Message], completion: list[Message], column: str, where: str) -> None:
    check_scored_conversation(prompt + completion, column, where)


def row_to_pair(row: dict, row_id: int, where: str) -> PreferencePair:
    """Validate one raw row and normalize it; raises :class:`RowError` naming ``where`` and the problem."""
    if not isinstance(row, dict):
        raise RowError(where, f"expected a JSON object, got {_describe(row)}")
    for column in ("chosen", "rejected"):
        if column not in row:
            raise RowError(where, f"missing column '{column}' (columns present: {sorted(row)})")
        if row[column] is None or row[column] == "":
            raise RowError(where, f"empty value in column '{column}'")
    chosen = as_messages(row["chosen"], "chosen", where, "assistant")
    rejected = as_messages(row["rejected"], "rejected", where, "assistant")
    if row.get("prompt") is not None:
        prompt = as_messages(row["prompt"], "prompt", where, "user")
    else:
        prompt, chosen, rejected = _split_common_prefix(chosen, rejected)
    for column, completion in (("chosen", chosen), ("rejected", rejected)):
        _check_roles(prompt, completion, column, where)
    if chosen == rejected:
        raise RowError(where, "'chosen' and 'rejected' are identical")
    return PreferencePair(row_id, where, prompt, chosen, rejected, _margin(row, where))


def _margin(row: dict, where: str) -> float | None:
    value = row.get("margin")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RowError(where, f"column 'margin' must be a finite number, got {_describe(value)}")
    return float(value)


def responses_and_scores(row: dict, where: str = "row") -> tuple[object, object]:
    """``(responses, scores)`` of a row holding several responses to one prompt, in any of its shapes:
    ``{responses: [...], scores: [...]}``, the paper's released ``{response_1_text, ..., response_n_text,
    all_scores}`` (numbered 1 to n without a gap: a missing one is a bad row, never a shorter list), or an
    UltraFeedback-like ``{completions: [{response (or text), score}, ...]}``. Values are checked by the caller."""
    if isinstance(row.get("completions"), list):
        completions = row["completions"]
        if not all(isinstance(c, dict) for c in completions):
            raise RowError(where, "'completions' must be a list of objects with 'response' (or 'text') and 'score'")
        return [c.get("response", c.get("text")) for c in completions], [c.get("score") for c in completions]
    if "responses" in row or "response_1_text" not in row:
        return row.get("responses"), row.get("scores")
    numbers = sorted(int(m.group(1)) for key in row if (m := re.fullmatch(r"response_(\d+)_text", str(key))))
    if numbers != list(range(1, len(numbers) + 1)):
        raise RowError(where, f"response_k_text columns numbered {numbers}; they must run from 1 to n without a gap")
    return [row[f"response_{k}_text"] for k in numbers], row.get("all_scores")
