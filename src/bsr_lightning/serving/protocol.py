"""The ``/score`` request: ``{"items": [{"prompt", "response"} | {"messages"}, ...]}`` parsed into conversations."""

from __future__ import annotations

from bsr_lightning.data.formats import Message, as_messages, check_scored_conversation
from bsr_lightning.errors import RowError

SCORE_PATH = "/score"


def parse_items(payload, max_items: int) -> list[list[Message]]:
    """The conversations of a ``/score`` request body; ``ValueError`` (400) or ``OverflowError`` (413) says what is
    wrong with it."""
    if not isinstance(payload, dict) or not isinstance(payload.get("items"), list):
        raise ValueError('the body must be a JSON object {"items": [...]}')
    items = payload["items"]
    if len(items) > max_items:
        raise OverflowError(f"{len(items)} items in one request; at most {max_items} (split the request)")
    conversations = []
    for i, item in enumerate(items):
        try:
            conversations.append(_conversation(item, f"items[{i}]"))
        except RowError as err:
            raise ValueError(str(err)) from None
    return conversations


def _conversation(item, where: str) -> list[Message]:
    if not isinstance(item, dict):
        raise RowError(where, "must be an object with 'prompt' and 'response', or 'messages'")
    if "messages" in item:
        messages = as_messages(item["messages"], "messages", where, "user")
        check_scored_conversation(messages, "messages", where)
        return messages
    if "prompt" not in item or "response" not in item:
        raise RowError(where, f"needs 'prompt' and 'response' (or 'messages'); has {sorted(item)}")
    messages = [*as_messages(item["prompt"], "prompt", where, "user"),
                *as_messages(item["response"], "response", where, "assistant")]
    check_scored_conversation(messages, "response", where)
    return messages
