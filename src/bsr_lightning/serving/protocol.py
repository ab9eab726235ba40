"""The ``/score`` request: ``{"items": [{"prompt", "response"} | {"messages"}, ...]}`` parsed into conversations,
within the server's limits."""

from __future__ import annotations

from dataclasses import dataclass

from bsr_lightning.data.formats import Message, as_messages, check_scored_conversation
from bsr_lightning.errors import RowError

SCORE_PATH = "/score"


@dataclass(frozen=True)
class Limits:
    """What one ``/score`` request may hold; beyond any of them it gets a 413 naming the limit.

    Args:
        max_items: conversations per request.
        max_messages: messages (turns) per conversation.
        max_chars: characters per conversation, all messages together.
    """

    max_items: int = 1024
    max_messages: int = 256
    max_chars: int = 1_000_000


@dataclass(frozen=True)
class Rejected:
    """A request answered with an error of its own (``status``, ``detail``), never its batch-mates'."""

    status: int
    detail: str


def parse_items(payload, limits: Limits) -> list[list[Message]]:
    """The conversations of a ``/score`` request body; ``ValueError`` (400) or ``OverflowError`` (413) says what is
    wrong with it. Sizes are checked before anything is parsed, so an oversized item costs no more than its count."""
    if not isinstance(payload, dict) or not isinstance(payload.get("items"), list):
        raise ValueError('the body must be a JSON object {"items": [...]}')
    items = payload["items"]
    if len(items) > limits.max_items:
        raise OverflowError(f"{len(items)} items in one request; at most {limits.max_items} (split the request)")
    conversations = []
    for i, item in enumerate(items):
        try:
            conversations.append(_conversation(item, f"items[{i}]", limits))
        except RowError as err:
            raise ValueError(str(err)) from None
    return conversations


def _conversation(item, where: str, limits: Limits) -> list[Message]:
    if not isinstance(item, dict):
        raise RowError(where, "must be an object with 'prompt' and 'response', or 'messages'")
    columns = ("messages",) if "messages" in item else ("prompt", "response")
    if any(c not in item for c in columns):
        raise RowError(where, f"needs 'prompt' and 'response' (or 'messages'); has {sorted(item)}")
    _check_size([item[c] for c in columns], where, limits)
    if columns == ("messages",):
        messages = as_messages(item["messages"], "messages", where, "user")
    else:
        messages = [*as_messages(item["prompt"], "prompt", where, "user"),
                    *as_messages(item["response"], "response", where, "assistant")]
    if len(messages) > limits.max_messages:
        raise OverflowError(f"{where}: {len(messages)} messages; at most {limits.max_messages} per item")
    check_scored_conversation(messages, columns[-1], where)
    return messages


def _check_size(values: list, where: str, limits: Limits) -> None:
    """Messages and characters of an item's raw values, counted before they are parsed (413 beyond the limits)."""
    lists = [v for v in values if isinstance(v, list)]
    if sum(map(len, lists)) > limits.max_messages:
        raise OverflowError(f"{where}: {sum(map(len, lists))} messages; at most {limits.max_messages} per item")
    chars = sum(len(v) for v in values if isinstance(v, str))
    chars += sum(len(m["content"]) for v in lists for m in v if isinstance(m, dict) and isinstance(m.get("content"),
                                                                                                    str))
    if chars > limits.max_chars:
        raise OverflowError(f"{where}: {chars} characters; at most {limits.max_chars} per item (--max_chars)")
