"""The paper's four over-optimization scenarios, built deterministically from a multi-response table.

Input: one row per response, ``{prompt, response, score, <group>, <generator>}`` (``score`` is the gold reward; the
prompt-group and response-generator column names are arguments). A seeded fraction of prompt groups and of generators
is held out, and a seeded fraction of the remaining (in-domain) prompts is set aside for Val1. Then

* ``train.jsonl``: pairs (chosen = higher gold score) from in-domain prompts, in-domain generators;
* ``val1.jsonl`` (in-domain, ID): pairs from the set-aside in-domain prompts, in-domain generators: prompts never
  trained on, drawn from the training groups and answered by the training generators (accuracy);
* ``val2.jsonl`` (prompt-OOD): held-out groups, in-domain generators;
* ``val3.jsonl`` (response-OOD): the training prompts, answered by held-out generators;
* ``val4.jsonl`` (mutual-OOD): held-out groups and held-out generators.

Val2-Val4 are multi-response sets of exactly ``responses_per_prompt`` responses (default 4, as the paper's), so
Kendall tau is over 4 responses: a prompt with more is sampled down (seeded), one with fewer is dropped and counted
in ``report.json`` (``dropped_too_few_responses``), which also says, per split, how many of its prompts, groups and
generators appear in ``train``. No response text is in two splits: two generators can write the same text, and a
text already in ``train`` (or an earlier split) is left out of the later ones. Evaluate ``val1`` with ``--format
pairs`` and ``val2``-``val4`` with ``--format multi``.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np

MULTI_SPLITS = {(True, False): "val2", (False, True): "val3", (True, True): "val4"}


def _held_out(values: set, fraction: float, rng: np.random.Generator) -> set:
    ordered = sorted(values)
    n = max(1, round(fraction * len(ordered))) if fraction > 0 else 0
    return set(rng.permutation(ordered)[:n].tolist())


def _unseen(responses: list[dict], owner: dict[str, str], split: str) -> list[dict]:
    """``responses`` whose text no other split took (``owner``: text -> split), each text once."""
    out, texts = [], set()
    for r in responses:
        if owner.get(r["response"], split) == split and r["response"] not in texts:
            out.append(r)
            texts.add(r["response"])
    return out


def _pairs(prompt: str, responses: list[dict]) -> list[dict]:
    return [{"prompt": prompt, **({"chosen": a["response"], "rejected": b["response"]} if a["score"] > b["score"]
                                  else {"chosen": b["response"], "rejected": a["response"]})}
            for a, b in itertools.combinations(responses, 2) if a["score"] != b["score"]]


def _multi(prompt: str, responses: list[dict]) -> dict:
    return {"prompt": prompt, "responses": [r["response"] for r in responses],
            "scores": [r["score"] for r in responses]}


def build_scenarios(rows: list[dict], group_column: str = "group", generator_column: str = "generator",
                    group_fraction: float = 0.2, generator_fraction: float = 0.2, val1_fraction: float = 0.1,
                    responses_per_prompt: int = 4, seed: int = 0) -> dict[str, list[dict]]:
    """Split ``rows`` (one per response) into ``train``, ``val1``..``val4`` (see the module docstring), plus
    ``dropped`` (prompts of Val2-Val4 with fewer than ``responses_per_prompt`` responses, with their split)."""
    rng = np.random.default_rng(seed)
    groups = _held_out({r[group_column] for r in rows}, group_fraction, rng)
    generators = _held_out({r[generator_column] for r in rows}, generator_fraction, rng)
    in_domain = {r["prompt"] for r in rows if r[group_column] not in groups}
    val1_prompts = _held_out(in_domain, val1_fraction, rng)
    by_prompt: dict[tuple[bool, bool, str], list[dict]] = defaultdict(list)
    for row in rows:
        by_prompt[(row[group_column] in groups, row[generator_column] in generators, row["prompt"])].append(row)
    out: dict[str, list] = {name: [] for name in ("train", "val1", "val2", "val3", "val4", "dropped")}
    out["generators"] = {name: set() for name in ("train", "val1", "val2", "val3", "val4")}
    ordered = sorted(by_prompt.items(), key=lambda kv: (kv[0][:2] != (False, False), kv[0][2] in val1_prompts, kv[0]))
    owner: dict[str, str] = {}  # text -> the split that took it; train first, then val1, then val2..val4
    for (new_group, new_generator, prompt), responses in ordered:
        name = "val1" if prompt in val1_prompts else "train"
        if (new_group, new_generator) != (False, False):
            name = MULTI_SPLITS[(new_group, new_generator)]
            if name == "val3" and prompt in val1_prompts:
                continue  # Val3 changes only the responses: its prompts are the training prompts
        responses = _unseen(responses, owner, name)
        if name in ("train", "val1"):
            pairs = _pairs(prompt, responses)
            out[name] += pairs
            used = {t for pair in pairs for t in (pair["chosen"], pair["rejected"])}
        elif len(responses) < responses_per_prompt:
            out["dropped"].append({"split": name, "prompt": prompt, "responses": len(responses)})
            continue
        else:
            keep = sorted(rng.choice(len(responses), responses_per_prompt, replace=False).tolist())
            responses = [responses[i] for i in keep]
            out[name].append(_multi(prompt, responses))
            used = {r["response"] for r in responses}
        owner.update(dict.fromkeys(used, name))
        out["generators"][name] |= {r[generator_column] for r in responses if r["response"] in used}
    out["generators"] = {name: sorted(gens) for name, gens in out["generators"].items()}
    return out


def smallest_generator_fraction(rows: list[dict], group_column: str = "group", generator_column: str = "generator",
                                group_fraction: float = 0.2, val1_fraction: float = 0.1,
                                responses_per_prompt: int = 4, seed: int = 0, least: float = 0.2) -> float | None:
    """The smallest fraction of generators to hold out, at least ``least`` and at least ``responses_per_prompt``
    generators, for which Val3 and Val4 are both non-empty with two generators left to train on; None when none is.
    With every prompt answered by each of N >= 8 generators this holds out 4 of them; with 4 of 17 per prompt (as
    UltraFeedback) as many as it takes for some prompts to have all their responses held out."""
    count = len({r[generator_column] for r in rows})
    for held in range(max(round(least * count), responses_per_prompt), count - 1):
        fraction = held / count
        out = build_scenarios(rows, group_column, generator_column, group_fraction, fraction, val1_fraction,
                              responses_per_prompt, seed)
        if out["val3"] and out["val4"]:
            return fraction
    return None


def scenario_report(splits: dict[str, list[dict]], rows: list[dict], group_column: str, generator_column: str,
                    responses_per_prompt: int) -> dict:
    """Per split: rows, prompts, and how many of its prompts, groups and generators appear in ``train``; the
    prompts dropped for having fewer than ``responses_per_prompt`` responses; the definitions."""
    group_of = {r["prompt"]: r[group_column] for r in rows}

    def parts(split: str) -> tuple[set, set]:
        """The split's prompts and the generators whose responses it holds (as built, so a text two generators
        wrote counts for the one the split took it from)."""
        return {item["prompt"] for item in splits[split]}, set(splits["generators"][split])

    train_prompts, train_gens = parts("train")
    train_groups = {group_of[p] for p in train_prompts}
    report = {"responses_per_prompt": responses_per_prompt, "splits": {}}
    for split in ("train", "val1", "val2", "val3", "val4"):
        prompts, gens = parts(split)
        split_groups = {group_of[p] for p in prompts}
        report["splits"][split] = {
            "rows": len(splits[split]), "prompts": len(prompts), "prompts_seen_in_train": len(prompts & train_prompts),
            "groups": len(split_groups), "groups_seen_in_train": len(split_groups & train_groups),
            "generators": len(gens), "generators_seen_in_train": len(gens & train_gens),
            "dropped_too_few_responses": sum(d["split"] == split for d in splits["dropped"])}
    report["definitions"] = {
        "val1": "ID: held-out prompts of the training groups, training generators (pairs; accuracy)",
        "val2": "prompt-OOD: held-out groups, training generators",
        "val3": "response-OOD: training prompts, held-out generators",
        "val4": "mutual-OOD: held-out groups and held-out generators"}
    return report
