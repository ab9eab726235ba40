"""Turning :class:`PreferencePair` into token ids: chat template (or plain HH text), length policy, counts."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bsr_lightning.backbones.tokenizers import chat_text, template_writes_specials
from bsr_lightning.data.formats import Message, PreferencePair
from bsr_lightning.errors import ConfigError, RowError, check, check_choice

log = logging.getLogger(__name__)
Overlong = Literal["drop", "truncate_left", "truncate_right"]


@dataclass
class EncodedPair:
    """Token ids of one pair: ``chosen`` ``(Tc,)`` and ``rejected`` ``(Tr,)`` int32 arrays."""

    row_id: int
    chosen: np.ndarray
    rejected: np.ndarray
    margin: float | None = None


def render(tokenizer, messages: list[Message]) -> str:
    """The text a reward model reads: the tokenizer's chat template, or HH-style ``Human:``/``Assistant:`` turns."""
    return chat_text(tokenizer, messages)


class PairEncoder:
    """Tokenize pairs and apply the over-long policy, counting everything it does.

    Special tokens at either end (BOS/CLS, EOS/SEP/end-of-turn) are kept when truncating; the text between is cut.

    Args:
        tokenizer: a Hugging Face tokenizer.
        max_length: the longest sequence, in tokens, special tokens included.
        overlong: ``drop`` the pair, or ``truncate_left`` (keep the end) / ``truncate_right`` (keep the start).
        bad_rows: a pair whose chosen and rejected render to the same tokens: ``error`` stops naming its row,
            ``skip`` counts it (``bad_identical_tokens``).
    """

    def __init__(self, tokenizer, max_length: int, overlong: Overlong = "drop", bad_rows: str = "error") -> None:
        check_choice(overlong, Overlong, "overlong")
        check(max_length >= 1, "max_length", f"must be at least 1, got {max_length}.")
        self.tokenizer = tokenizer
        self.bad_rows = bad_rows
        self.max_length = max_length
        self.overlong = overlong
        # structural specials kept when truncating; an unknown word (<unk>) is text, not structure
        self.special_ids = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}

    def encode(self, pairs: list[PreferencePair], name: str) -> tuple[list[EncodedPair], Counter]:
        """Encode ``pairs``; returns the kept pairs and counts (``pairs``, ``overlong``, ``dropped_overlong``,
        ``truncated``, ``dropped_identical_after_truncation``), which are also logged."""
        ids = self._tokenize([p.prompt + c for p in pairs for c in (p.chosen, p.rejected)])
        counts: Counter = Counter(pairs=len(pairs))
        encoded = []
        for i, pair in enumerate(pairs):
            chosen, rejected = ids[2 * i], ids[2 * i + 1]
            if chosen == rejected:
                self._identical(pair, counts)
                continue
            too_long = max(len(chosen), len(rejected)) > self.max_length
            counts["overlong"] += too_long
            if too_long and self.overlong == "drop":
                counts["dropped_overlong"] += 1
                continue
            if too_long:
                chosen, rejected = self._truncate(chosen), self._truncate(rejected)
                counts["truncated"] += 1
                if chosen == rejected:
                    counts["dropped_identical_after_truncation"] += 1
                    continue
            encoded.append(EncodedPair(pair.row_id, np.asarray(chosen, np.int32), np.asarray(rejected, np.int32),
                                       pair.margin))
        self._report(name, counts)
        return encoded, counts

    def _identical(self, pair: PreferencePair, counts: Counter) -> None:
        problem = "'chosen' and 'rejected' render to the same tokens (what tells them apart is lost in the template)"
        if self.bad_rows == "error":
            raise RowError(pair.where, f"{problem}. Fix the row, or pass `--data.init_args.bad_rows skip` to skip "
                                       "such rows (they are counted and reported).")
        counts["bad_identical_tokens"] += 1

    def encode_sequences(self, conversations: list[list[Message]], name: str) -> tuple[list[list[int] | None], Counter]:
        """Encode single conversations (evaluation). Over-long ones follow the policy; ``drop`` gives None, which
        callers report. Returns the ids and counts (``sequences``, ``overlong``, ``dropped_overlong``,
        ``truncated``)."""
        capped = [self.cap_characters(c) for c in conversations]
        ids = self._tokenize(capped)
        counts: Counter = Counter(sequences=len(ids), capped_before_tokenizing=sum(
            a is not b for a, b in zip(capped, conversations, strict=True)))
        out: list[list[int] | None] = []
        for seq in ids:
            too_long = len(seq) > self.max_length
            counts["overlong"] += too_long
            if too_long and self.overlong == "drop":
                counts["dropped_overlong"] += 1
                out.append(None)
                continue
            counts["truncated"] += too_long
            out.append(self._truncate(seq))
        if counts["capped_before_tokenizing"]:
            log.warning("%s: %d conversations had a message over %d characters, cut to that before tokenizing "
                        "(max_length=%d tokens, policy %r: no kept token changes).", name,
                        counts["capped_before_tokenizing"], self.char_cap, self.max_length, self.overlong)
        if counts["overlong"]:
            log.warning("%s: %d of %d sequences longer than max_length=%d (policy %r).", name, counts["overlong"],
                        len(ids), self.max_length, self.overlong)
        return out, counts

    @property
    def char_cap(self) -> int:
        """Characters a message may keep before tokenizing: ``max_length`` times the longest token's characters
        (at least 16), plus one token's worth. Fewer characters cannot hold ``max_length`` tokens, so cutting a longer
        message (keeping its end for ``truncate_left``, its start otherwise) changes no kept token, and a 50 MB
        item costs no more memory than this."""
        if not hasattr(self, "_char_cap"):
            longest = max((len(t) for t in self.tokenizer.get_vocab()), default=16)
            self._char_cap = (self.max_length + 1) * max(16, longest)
        return self._char_cap

    def cap_characters(self, conversation: list[Message]) -> list[Message]:
        """``conversation`` with each message's content cut to :attr:`char_cap` characters on the side the
        over-long policy drops (the same list when nothing is cut)."""
        cap = self.char_cap
        if all(len(m["content"]) <= cap for m in conversation):
            return conversation
        keep_end = self.overlong == "truncate_left"
        return [{**m, "content": (m["content"][-cap:] if keep_end else m["content"][:cap])} for m in conversation]

    def _tokenize(self, conversations: list[list[Message]]) -> list[list[int]]:
        """Render and tokenize in one batched call; chat templates carry their own special tokens (the plain one
        does not)."""
        texts = [render(self.tokenizer, c) for c in conversations]
        return self.tokenizer(texts, add_special_tokens=not template_writes_specials(self.tokenizer))["input_ids"]

    def _truncate(self, ids: list[int]) -> list[int]:
        if len(ids) <= self.max_length:
            return ids
        head = 0
        while head < len(ids) and ids[head] in self.special_ids:
            head += 1
        tail = 0
        while tail < len(ids) - head and ids[len(ids) - 1 - tail] in self.special_ids:
            tail += 1
        keep = self.max_length - head - tail
        if keep <= 0:
            raise ConfigError(f"max_length {self.max_length} leaves no room for text besides special tokens.")
        body = ids[head : len(ids) - tail]
        body = body[-keep:] if self.overlong == "truncate_left" else body[:keep]
        return ids[:head] + body + ids[len(ids) - tail :]

    def _report(self, name: str, counts: Counter) -> None:
        if counts["overlong"]:
            log.warning(
                "%s: %d of %d pairs longer than max_length=%d tokens; policy %r: %d dropped, %d truncated "
                "(%d dropped as identical after truncation).", name, counts["overlong"], counts["pairs"],
                self.max_length, self.overlong, counts["dropped_overlong"], counts["truncated"],
                counts["dropped_identical_after_truncation"])
        else:
            log.info("%s: %d pairs, none longer than max_length=%d.", name, counts["pairs"], self.max_length)
