"""A generated preference task whose gold reward is computable for any text (a leaf module: stdlib only).

Prompts ask for advice on a topic. :func:`gold_reward` scores any response to such a prompt: it rewards staying on
the prompt's topic, politeness and concrete tips, and penalizes rudeness, other topics and verbosity. Pairs are
sampled deterministically from a seed; the chosen response is the one with the higher gold reward, so held-out
accuracy against gold means something, and a policy's text can be scored by the same gold (RLOO demos).

Used by the tiny offline model (:mod:`bsr_lightning.backbones.tiny`, its vocabulary) and by the DataModules of
:mod:`bsr_lightning.data.synthetic`.
"""

from __future__ import annotations

import random
import re
from typing import NamedTuple

TOPICS = ("baking", "chess", "cycling", "gardening", "guitar", "hiking", "painting", "photography", "python",
          "running", "sailing", "swimming", "tennis", "yoga", "knitting", "astronomy", "camping", "cooking",
          "dancing", "fishing", "journaling", "meditation", "pottery", "singing")
PROMPTS = ("How do I get started with {t}?", "Can you give me some advice about {t}?",
           "What should a beginner know about {t}?", "I want to get better at {t}. Any tips?")
POLITE = ("Happy to help!", "Great question.", "Sure, glad you asked.")
RUDE = ("That is a stupid question.", "Figure it out yourself.", "Honestly, this is a waste of time.")
TOPIC_LINES = ("Here is what matters most in {t}.", "With {t}, a steady routine pays off.",
               "Many people enjoy {t} once they know the basics.")
TIPS = ("Start with small steps.", "Practice a little every day.", "Find a friend to learn with.",
        "Keep notes on your progress.")
FILLER = ("Some people say many things.", "There are lots of opinions out there.", "It depends on various factors.",
          "Things can be different for everyone.")
_WORDS = re.compile(r"[a-z']+")


def prompt_topic(prompt: str) -> str | None:
    """The topic a prompt asks about (the first topic word in it), or None."""
    words = set(_WORDS.findall(prompt.lower()))
    return next((t for t in TOPICS if t in words), None)


def gold_reward(prompt: str, response: str) -> float:
    """The task's true reward of ``response`` to ``prompt``; defined for any text.

    ``+2`` on the prompt's topic, ``-1`` per other topic named, ``+1`` polite, ``-2`` rude, ``+0.5`` per distinct tip
    (at most 2), ``-0.05`` per word beyond 30.
    """
    text = response.lower()
    words = _WORDS.findall(text)
    topic = prompt_topic(prompt)
    score = 2.0 * (topic is not None and topic in words)
    score -= 1.0 * sum(t in words for t in TOPICS if t != topic)
    score += 1.0 * any(p.lower() in text for p in POLITE)
    score -= 2.0 * any(r.lower() in text for r in RUDE)
    score += 0.5 * min(2, sum(tip.lower() in text for tip in TIPS))
    score -= 0.05 * max(0, len(words) - 30)
    return round(score, 4)


class Style(NamedTuple):
    """A response-generating policy: the choices it draws from (uniformly; repeats weight a choice)."""

    tones: tuple[str, ...] = ("polite", "rude", "neutral")
    focus: tuple[str, ...] = ("on", "on", "off", "none")
    tips: tuple[int, int] = (0, 3)
    fillers: tuple[int, ...] = (0, 0, 1, 2, 4)


# Five generating policies with different habits, as the paper's responses come from different LLMs: which
# generators a reward model never saw is a shift in the distribution of responses, not a planted feature.
GENERATORS = {
    "helpful": Style(("polite", "polite", "neutral"), ("on", "on", "on", "off"), (1, 3), (0, 0, 0, 1)),
    "terse": Style(("neutral", "neutral", "polite"), ("on", "none", "none"), (0, 1), (0,)),
    "verbose": Style(("polite", "neutral"), ("on", "on", "off"), (2, 4), (2, 3, 4)),
    "careless": Style(("rude", "neutral", "polite"), ("on", "off", "off", "none"), (0, 2), (0, 1, 2)),
    "mixed": Style(),
}


def _response(rng: random.Random, topic: str, style: Style = Style()) -> str:
    parts = []
    tone = rng.choice(style.tones)
    if tone != "neutral":
        parts.append(rng.choice(POLITE if tone == "polite" else RUDE))
    focus = rng.choice(style.focus)
    if focus != "none":
        subject = topic if focus == "on" else rng.choice([t for t in TOPICS if t != topic])
        parts.append(rng.choice(TOPIC_LINES).format(t=subject))
    parts += rng.sample(TIPS, rng.randint(*style.tips))
    parts += rng.sample(FILLER, rng.choice(style.fillers))
    return " ".join(parts) or "I am not sure."


LENGTH_BIAS_SEED_OFFSET = 7_919  # the label draws of ``length_bias`` use their own stream: same pairs at any bias


def words(text: str) -> int:
    """Length in whitespace-separated words: the tiny model's tokens (its tokenizer splits on whitespace only)."""
    return len(text.split())


def generate_preference_rows(num_pairs: int, seed: int = 0, length_bias: float = 0.0) -> list[dict]:
    """``num_pairs`` rows ``{prompt, chosen, rejected, chosen_gold, rejected_gold, label}``, deterministic in
    ``seed``.

    ``label`` says what decided which response is ``chosen``: ``"gold"`` (the higher gold reward) or, with
    probability ``length_bias`` for each pair whose responses differ in length, ``"length"`` (the longer one, in
    words, whatever its gold reward): annotators' preference for longer answers, planted at a known rate. The
    responses and the gold rewards do not depend on ``length_bias`` (its draws come from a separate stream), so two
    biases give the same pairs with some labels flipped; ``length_bias=0`` gives exactly the rows it always gave.
    """
    if not 0.0 <= length_bias <= 1.0:
        raise ValueError(f"length_bias must be in [0, 1], got {length_bias}.")
    rng, coin = random.Random(seed), random.Random(seed + LENGTH_BIAS_SEED_OFFSET)
    rows = []
    while len(rows) < num_pairs:
        topic = rng.choice(TOPICS)
        prompt = rng.choice(PROMPTS).format(t=topic)
        a, b = _response(rng, topic), _response(rng, topic)
        ga, gb = gold_reward(prompt, a), gold_reward(prompt, b)
        if ga == gb:
            continue
        by_length = coin.random() < length_bias and words(a) != words(b)
        key = (lambda x: -words(x[0])) if by_length else (lambda x: -x[1])
        (chosen, gc), (rejected, gr) = sorted(((a, ga), (b, gb)), key=key)
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "chosen_gold": gc,
                     "rejected_gold": gr, "label": "length" if by_length else "gold"})
    return rows


def response_table(num_prompts: int, per_prompt: int, seed: int = 0) -> list[dict]:
    """One row per response ``{prompt, response, score, topic, generator}``: ``num_prompts`` prompts, each answered
    ``per_prompt`` distinct times (``generator`` ``g0``.. by answer slot), ``score`` the gold reward; deterministic in
    ``seed``. The shape ``scenarios`` splits and ``evaluate --format multi`` scores."""
    rng = random.Random(seed)
    rows = []
    for index in range(num_prompts):
        topic = TOPICS[index % len(TOPICS)]
        prompt = PROMPTS[(index // len(TOPICS)) % len(PROMPTS)].format(t=topic)
        seen: list[str] = []
        while len(seen) < per_prompt:
            text = _response(rng, topic)
            if text not in seen:
                seen.append(text)
        rows += [{"prompt": prompt, "response": text, "score": gold_reward(prompt, text), "topic": topic,
                  "generator": f"g{slot}"} for slot, text in enumerate(seen)]
    return rows


def generator_response_table(per_generator: int = 4, seed: int = 0) -> list[dict]:
    """One row per response ``{prompt, response, score, topic, generator}`` for every prompt of the task
    (:func:`all_prompts`): each of the :data:`GENERATORS` answers it ``per_generator`` distinct times; ``score`` is
    the gold reward. Topics are the prompt families and the generators the policies that ``scenarios`` holds out
    (``--group_column topic``); deterministic in ``seed``."""
    rng = random.Random(seed)
    rows = []
    for prompt in all_prompts():
        topic = prompt_topic(prompt)
        for name, style in GENERATORS.items():
            seen: list[str] = []
            while len(seen) < per_generator:
                text = _response(rng, topic, style)
                if text not in seen:
                    seen.append(text)
            rows += [{"prompt": prompt, "response": text, "score": gold_reward(prompt, text), "topic": topic,
                      "generator": name} for text in seen]
    return rows


def vocabulary() -> list[str]:
    """Every whitespace-separated word the task can produce, sorted (the tiny model's word-level vocabulary)."""
    texts = [*POLITE, *RUDE, *TIPS, *FILLER, "I am not sure."]
    for template in (*PROMPTS, *TOPIC_LINES):
        texts += [template.format(t=topic) for topic in TOPICS]
    return sorted({word for text in texts for word in text.split()})


def all_prompts() -> list[str]:
    """The ``len(TOPICS) * len(PROMPTS)`` distinct prompts of the task."""
    return [p.format(t=t) for t in TOPICS for p in PROMPTS]
