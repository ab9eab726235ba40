"""The paper's four over-optimization scenarios, built deterministically from a multi-response table.

Input: one row per response, ``{prompt, response, score, <group>, <generator>}`` (``score`` is the gold reward; the
prompt-group and response-generator column names are arguments). A seeded fraction of prompt groups and of generators
is held out; then

* ``train.jsonl``: pairs from in-domain prompts and in-domain generators (chosen = higher gold score);
* ``val1.jsonl``: in-domain pairs built from each in-domain prompt's held-out responses;
* ``val2.jsonl``: prompt-disjoint multi-response sets (held-out groups, in-domain generators);
* ``val3.jsonl``: response-disjoint sets (in-domain prompts, held-out generators);
* ``val4.jsonl``: mutual-disjoint sets (held-out groups and generators).

A multi-response set needs at least two responses (Kendall tau); prompts with fewer in a held-out cell are counted
under ``skipped_single_response``. Hold out enough generators that each prompt keeps two responses.

Evaluate ``val1`` with ``--format pairs`` and ``val2``-``val4`` with ``--format multi`` (Kendall tau vs gold).
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from bsr_lightning.data.formats import RowError
from bsr_lightning.data.loading import iter_raw_rows


def _held_out(values: set, fraction: float, rng: np.random.Generator) -> set:
    ordered = sorted(values)
    n = max(1, round(fraction * len(ordered))) if fraction > 0 else 0
    return set(rng.permutation(ordered)[:n].tolist())


def _pairs(prompt: str, responses: list[dict]) -> list[dict]:
    return [{"prompt": prompt, **({"chosen": a["response"], "rejected": b["response"]} if a["score"] > b["score"]
                                  else {"chosen": b["response"], "rejected": a["response"]})}
            for a, b in itertools.combinations(responses, 2) if a["score"] != b["score"]]


def _multi(prompt: str, responses: list[dict]) -> dict:
    return {"prompt": prompt, "responses": [r["response"] for r in responses],
            "scores": [r["score"] for r in responses]}


def build_scenarios(rows: list[dict], group_column: str = "group", generator_column: str = "generator",
                    group_fraction: float = 0.2, generator_fraction: float = 0.2, val1_responses: int = 2,
                    seed: int = 0) -> dict[str, list[dict]]:
    """Split ``rows`` (one per response) into ``train``, ``val1``..``val4`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    groups = _held_out({r[group_column] for r in rows}, group_fraction, rng)
    generators = _held_out({r[generator_column] for r in rows}, generator_fraction, rng)
    by_prompt: dict[tuple[bool, bool, str], list[dict]] = defaultdict(list)
    for row in rows:
        by_prompt[(row[group_column] in groups, row[generator_column] in generators, row["prompt"])].append(row)
    out: dict[str, list] = {name: [] for name in ("train", "val1", "val2", "val3", "val4", "skipped_single_response")}
    for (new_group, new_generator, prompt), responses in sorted(by_prompt.items(), key=lambda kv: kv[0]):
        if (new_group, new_generator) == (False, False):
            order = rng.permutation(len(responses))
            held = [responses[i] for i in order[:val1_responses]]
            out["train"] += _pairs(prompt, [responses[i] for i in order[val1_responses:]])
            out["val1"] += _pairs(prompt, held)
        else:
            name = {(True, False): "val2", (False, True): "val3", (True, True): "val4"}[(new_group, new_generator)]
            out[name if len(responses) >= 2 else "skipped_single_response"].append(_multi(prompt, responses))
    return out


def scenarios(data: str, output_dir: str, group_column: str = "group", generator_column: str = "generator",
              group_fraction: float = 0.2, generator_fraction: float = 0.2, val1_responses: int = 2,
              seed: int = 0) -> dict[str, int]:
    """Write ``train.jsonl`` and ``val1.jsonl``..``val4.jsonl`` into ``output_dir``; returns the row counts.

    Args:
        data: a local file or hub id with one row per response: prompt, response, score and the two columns below.
        output_dir: where the five files go.
        group_column: the prompt-group column (e.g. a domain or source dataset).
        generator_column: the column naming the model that generated the response.
        group_fraction: fraction of prompt groups held out (val2, val4).
        generator_fraction: fraction of generators held out (val3, val4).
        val1_responses: responses per in-domain prompt held out for val1.
        seed: the seed of every choice.
    """
    rows = []
    for where, row in iter_raw_rows(data):
        missing = {"prompt", "response", "score", group_column, generator_column} - set(row if isinstance(row, dict)
                                                                                       else {})
        if isinstance(row, RowError) or missing:
            raise row if isinstance(row, RowError) else RowError(where, f"missing columns {sorted(missing)}")
        rows.append(row)
    splits = build_scenarios(rows, group_column, generator_column, group_fraction, generator_fraction,
                             val1_responses, seed)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, items in splits.items():
        if name == "skipped_single_response":
            continue
        (out / f"{name}.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    counts = {name: len(items) for name, items in splits.items()}
    print(json.dumps(counts))
    return counts
