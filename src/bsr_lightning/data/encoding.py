"""Turning :class:`PreferencePair` into token ids: chat template (or plain HH text), length policy, counts."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bsr_lightning.backbones.tokenizers import chat_text, template_writes_specials
from bsr_lightning.data.formats import Message, PreferencePair
from bsr_lightning.errors import RowError, check, check_choice

log = logging.getLogger(__name__)
Overlong = Literal["drop", "truncate_left", "truncate_right"]
SpecialTokens = Literal["template", "rewardbench"]


class Unscorable(ValueError):
    """A sequence the over-long policy cannot cut: its special tokens alone fill ``max_length``."""


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
        special_tokens: ``template`` (the authors' and training's tokenization: a chat template's text as it is,
            with ``add_special_tokens=False``; the tokenizer's specials only without one) or ``rewardbench``
            (RewardBench's pipeline: ``tokenizer(text)`` with its specials always, a doubled BOS then taken once, as
            its pipeline masks the first; so a template that writes no BOS, such as ``zephyr``, is scored after one).
    """

    def __init__(self, tokenizer, max_length: int, overlong: Overlong = "drop", bad_rows: str = "error",
                 special_tokens: SpecialTokens = "template") -> None:
        check_choice(overlong, Overlong, "overlong")
        check_choice(special_tokens, SpecialTokens, "special_tokens")
        self.special_tokens = special_tokens
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
                self._bad(pair, "'chosen' and 'rejected' render to the same tokens (what tells them apart is lost "
                                "in the template)", "bad_identical_tokens", counts)
                continue
            too_long = max(len(chosen), len(rejected)) > self.max_length
            counts["overlong"] += too_long
            if too_long and self.overlong == "drop":
                counts["dropped_overlong"] += 1
                continue
            if too_long:
                try:
                    chosen, rejected = self._truncate(chosen), self._truncate(rejected)
                except Unscorable as err:
                    self._bad(pair, str(err), "bad_no_room", counts)
                    continue
                counts["truncated"] += 1
                if chosen == rejected:
                    counts["dropped_identical_after_truncation"] += 1
                    continue
            encoded.append(EncodedPair(pair.row_id, np.asarray(chosen, np.int32), np.asarray(rejected, np.int32),
                                       pair.margin))
        self._report(name, counts)
        return encoded, counts

    def _bad(self, pair: PreferencePair, problem: str, key: str, counts: Counter) -> None:
        """A pair that cannot be trained on: a :class:`RowError` naming it, or counted as ``key`` under ``skip``."""
        if self.bad_rows == "error":
            raise RowError(pair.where, f"{problem}. Fix the row, or pass `--data.init_args.bad_rows skip` to skip "
                                       "such rows (they are counted and reported).")
        counts[key] += 1

    def encode_sequences(self, conversations: list[list[Message]], name: str
                         ) -> tuple[list[list[int] | None], Counter, dict[int, str]]:
        """Encode single conversations (evaluation). Over-long ones follow the policy; ``drop`` gives None, which
        callers report. Returns the ids, counts (``sequences``, ``overlong``, ``dropped_overlong``, ``truncated``)
        and the problems of the conversations that cannot be scored at all, by index (their ids are None): one
        conversation's problem is its own, never its batch-mates'."""
        capped = [self.cap_characters(c) for c in conversations]
        ids = self._tokenize(capped)
        counts: Counter = Counter(sequences=len(ids), capped_before_tokenizing=sum(
            a is not b for a, b in zip(capped, conversations, strict=True)))
        out: list[list[int] | None] = []
        problems: dict[int, str] = {}
        for i, seq in enumerate(ids):
            too_long = len(seq) > self.max_length
            counts["overlong"] += too_long
            if too_long and self.overlong == "drop":
                counts["dropped_overlong"] += 1
                out.append(None)
                continue
            counts["truncated"] += too_long
            try:
                out.append(self._truncate(seq))
            except Unscorable as err:
                problems[i] = str(err)
                out.append(None)
        if counts["capped_before_tokenizing"]:
            log.warning("%s: %d conversations had a message over %d characters, cut before tokenizing where at "
                        "least max_length=%d tokens remain (policy %r: no kept token changes).", name,
                        counts["capped_before_tokenizing"], self.char_cap, self.max_length, self.overlong)
        if counts["overlong"]:
            log.warning("%s: %d of %d sequences longer than max_length=%d (policy %r).", name, counts["overlong"],
                        len(ids), self.max_length, self.overlong)
        return out, counts, problems

    @property
    def char_cap(self) -> int:
        """The first number of characters a message is cut to before tokenizing: ``max_length`` times the longest
        token's characters (at least 16), plus one token's worth (:meth:`cap_characters` grows it where needed)."""
        if not hasattr(self, "_char_cap"):
            longest = max((len(t) for t in self.tokenizer.get_vocab()), default=16)
            self._char_cap = (self.max_length + 1) * max(16, longest)
        return self._char_cap

    def cap_characters(self, conversation: list[Message]) -> list[Message]:
        """``conversation`` with each over-long message cut on the side the over-long policy drops (its start for
        ``truncate_left``), so that a 50 MB item costs no more memory than the tokens it keeps. The same list when
        nothing is cut.

        A cut never changes a kept token: it falls on whitespace, and is taken only when the kept characters
        alone tokenize to at least ``max_length + 2`` tokens, so every token the over-long policy keeps lies
        beyond the cut. Where they do not (text a tokenizer drops, such as runs of spaces or combining marks), the
        cut doubles until they do, up to the whole message."""
        if all(len(m["content"]) <= self.char_cap for m in conversation):
            return conversation
        keep_end = self.overlong == "truncate_left"
        return [{**m, "content": self._cap_text(m["content"], keep_end)} for m in conversation]

    def _cap_text(self, text: str, keep_end: bool) -> str:
        cap = self.char_cap
        while cap < len(text):
            cut = _cut_at_space(text, cap, keep_end)
            if cut is not None and len(self.tokenizer(cut, add_special_tokens=False)["input_ids"]) >= \
                    self.max_length + 2:
                return cut
            cap *= 2
        return text

    def _tokenize(self, conversations: list[list[Message]]) -> list[list[int]]:
        """Render and tokenize in one batched call; chat templates carry their own special tokens (the plain one
        does not)."""
        texts = [render(self.tokenizer, c) for c in conversations]
        if self.special_tokens == "template":
            return self.tokenizer(texts, add_special_tokens=not template_writes_specials(self.tokenizer))["input_ids"]
        bos = self.tokenizer.bos_token_id
        ids = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        return [x[1:] if bos is not None and len(x) > 1 and x[0] == x[1] == bos else x for x in ids]

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
            first = self.tokenizer.convert_ids_to_tokens(ids[len(ids) - tail] if tail else ids[0])
            raise Unscorable(f"its special tokens, {head} at the start and {tail} at the end (from {first!r} on; "
                             f"special tokens written in the text count), leave no room for text under "
                             f"max_length={self.max_length}")
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


def _cut_at_space(text: str, cap: int, keep_end: bool) -> str | None:
    """The last (``keep_end``) or first ``cap`` or more characters of ``text``, cut just after (before) a whitespace
    character within ``cap`` more; None when there is none there (one long word: no cut)."""
    if keep_end:
        start = len(text) - cap
        space = max(text.rfind(c, max(0, start - cap), start + 1) for c in " \n\t")
        return text[space + 1:] if space >= 0 else None
    ends = [i for c in " \n\t" if (i := text.find(c, cap - 1, 2 * cap)) >= 0]
    return text[: min(ends)] if ends else None
