"""Evaluation streams: rows are pulled a chunk at a time and memory does not grow with the dataset size."""

import gzip
import json
import os
import tracemalloc

import numpy as np
import pytest

from bsr_lightning.data.loading import iter_raw_rows
from bsr_lightning.evaluation.evaluate import stream_scores
from bsr_lightning.evaluation.evaluators import EVALUATORS


class LengthScorer:
    """Scores a conversation by the length of its last message; records the largest call."""

    def __init__(self):
        self.largest_call = 0

    def score_each(self, conversations, desc="", groups=None):
        self.largest_call = max(self.largest_call, len(conversations))
        return np.array([float(len(c[-1]["content"])) for c in conversations]), None, {}


def pairs_file(path, n):
    with gzip.open(path, "wt") as f:
        for i in range(n):
            f.write(json.dumps({"prompt": f"question {i} " * 5, "chosen": "a longer helpful answer " * (i % 7 + 2),
                                "rejected": "short " * (i % 5 + 1)}) + "\n")
    return str(path)


def test_rows_are_pulled_one_chunk_at_a_time(tmp_path):
    pulled, scorer = [0], LengthScorer()

    def rows():
        for where, row in iter_raw_rows(pairs_file(tmp_path / "p.jsonl.gz", 1000)):
            pulled[0] += 1
            # rows pulled but not yet scored never exceed one chunk
            assert pulled[0] - records.tell_rows() <= 100
            yield where, row

    class Records:
        lines = 0

        def write(self, line):
            self.lines += 1

        def tell_rows(self):
            return self.lines

    records = Records()
    metrics = stream_scores(scorer, EVALUATORS["pairs"](), rows(), records, chunk_rows=100, progress=False)
    assert scorer.largest_call == 200 and records.lines == 1000 and metrics["pairs"] == 1000
    # chosen is longer than rejected in every row: (i % 7 + 2) * 24 > (i % 5 + 1) * 6
    assert metrics["accuracy"] == 1.0


CHUNK = 256


def peak_bytes(path) -> int:
    tracemalloc.start()
    with open(os.devnull, "w") as sink:
        stream_scores(LengthScorer(), EVALUATORS["pairs"](), iter_raw_rows(path), sink, chunk_rows=CHUNK,
                      progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


@pytest.mark.filterwarnings("ignore")
def test_peak_memory_does_not_grow_with_dataset_size(tmp_path):
    small, large = pairs_file(tmp_path / "small.jsonl.gz", 1_000), pairs_file(tmp_path / "large.jsonl.gz", 20_000)
    peak_bytes(small)  # warm up imports and caches
    small_peak, large_peak = peak_bytes(small), peak_bytes(large)
    # 20x the rows; holding them (or their scores) would multiply the peak; streaming keeps it within noise
    assert large_peak < 1.3 * small_peak, (small_peak, large_peak)
