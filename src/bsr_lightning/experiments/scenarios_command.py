"""``python -m bsr_lightning scenarios``: read a one-row-per-response table, build the four scenarios
(:mod:`~bsr_lightning.experiments.scenarios`) and write them with ``report.json``, never over the input or a file the
command did not write."""

from __future__ import annotations

import json
import logging

from bsr_lightning.data.formats import RowError
from bsr_lightning.data.loading import iter_raw_rows, local_files
from bsr_lightning.errors import DataError, check
from bsr_lightning.experiments.scenarios import build_scenarios, scenario_report, smallest_generator_fraction
from bsr_lightning.files import claim_output_dir, record_outputs, write_text_atomic

log = logging.getLogger(__name__)
SPLITS = ("train", "val1", "val2", "val3", "val4")
OUTPUTS = [f"{name}.jsonl" for name in SPLITS] + ["report.json"]


def _read_table(data: str, group_column: str, generator_column: str) -> list[dict]:
    rows = []
    for where, row in iter_raw_rows(data):
        if isinstance(row, RowError):
            raise row
        missing = {"prompt", "response", "score", group_column, generator_column} - set(row if isinstance(row, dict)
                                                                                       else {})
        if missing:
            raise RowError(where, f"missing columns {sorted(missing)}")
        rows.append(row)
    if not rows:
        raise DataError(f"{data}: no rows; scenarios needs one row per response.")
    return rows


def scenarios(data: str, output_dir: str, group_column: str = "group", generator_column: str = "generator",
              group_fraction: float = 0.2, generator_fraction: float | None = None, val1_fraction: float = 0.1,
              responses_per_prompt: int = 4, seed: int = 0, overwrite: bool = False) -> dict[str, int]:
    """Write ``train.jsonl``, ``val1.jsonl``..``val4.jsonl`` and ``report.json`` into ``output_dir``.

    Args:
        data: a local file or hub id with one row per response: prompt, response, score and the two columns below.
        output_dir: where the files go: new, empty, or an earlier ``scenarios`` output.
        group_column: the prompt-group column (e.g. a domain or source dataset).
        generator_column: the column naming the model that generated the response.
        group_fraction: fraction of prompt groups held out (Val2, Val4).
        generator_fraction: fraction of generators held out (Val3, Val4); None holds out the fewest, at least 20%
            and at least ``responses_per_prompt`` generators, that leave Val3 and Val4 non-empty (4 of N >= 8
            generators that each answer every prompt; more where each prompt has 4 of 17, as UltraFeedback). The
            fraction used is in ``report.json``.
        val1_fraction: fraction of in-domain prompts set aside for Val1.
        responses_per_prompt: responses in each Val2-Val4 set (prompts with fewer are dropped and counted).
        seed: the seed of every choice.
        overwrite: write into a folder that holds files this command did not write (only its outputs are replaced).
    """
    for key, value in (("group_fraction", group_fraction), ("generator_fraction", generator_fraction),
                       ("val1_fraction", val1_fraction)):
        check(value is None or 0 <= value < 1, key, f"must be in [0, 1), got {value}.")
    check(responses_per_prompt >= 2, "responses_per_prompt", f"must be at least 2 (Kendall tau), got "
                                                             f"{responses_per_prompt}.")
    out = claim_output_dir(output_dir, OUTPUTS, local_files(data) or [], overwrite, "scenarios")
    rows = _read_table(data, group_column, generator_column)
    if generator_fraction is None:
        generator_fraction = smallest_generator_fraction(rows, group_column, generator_column, group_fraction,
                                                         val1_fraction, responses_per_prompt, seed)
        if generator_fraction is None:
            raise DataError(f"{data}: no number of held-out generators gives Val3 and Val4 prompts with "
                            f"{responses_per_prompt} responses each (they need prompts all of whose responses come "
                            "from held-out generators); lower --responses_per_prompt (e.g. 2), or give "
                            "--generator_fraction to write the splits anyway.")
    splits = build_scenarios(rows, group_column, generator_column, group_fraction, generator_fraction,
                             val1_fraction, responses_per_prompt, seed)
    report = scenario_report(splits, rows, group_column, generator_column, responses_per_prompt)
    report["generator_fraction"] = generator_fraction
    for name in SPLITS:
        write_text_atomic(out / f"{name}.jsonl", "".join(json.dumps(item) + "\n" for item in splits[name]))
        if not splits[name]:
            log.warning("scenarios: %s is empty (%d prompts dropped for fewer than %d responses); hold out other "
                        "fractions or lower --responses_per_prompt.", name,
                        report["splits"][name]["dropped_too_few_responses"], responses_per_prompt)
    write_text_atomic(out / "report.json", json.dumps(report, indent=1))
    record_outputs(out, OUTPUTS)
    counts = {name: len(splits[name]) for name in SPLITS} | {"dropped_too_few_responses": len(splits["dropped"])}
    print(json.dumps(counts))
    return counts
