"""scripts/time_tests.py, which writes the README's `make test` figure: its reading of pytest's summary; and the
suite's own schedule (conftest: the slow files exist, are marked ``slow`` and are collected first, longest first)."""

from pathlib import Path
from types import SimpleNamespace

import conftest
from conftest import load_script


def test_time_tests_reads_pytests_summary_line():
    counts = load_script("time_tests").summary_counts
    assert counts("455 passed, 1 skipped in 356.06s (0:05:56)") == {"passed": 455, "skipped": 1}
    assert counts("2 failed, 450 passed, 1 error in 9.00s") == {"failed": 2, "passed": 450, "errors": 1}
    assert counts("3 errors in 1.0s") == {"errors": 3} and counts("no tests ran in 0.01s") == {}


def test_slow_files_exist_and_come_first_longest_first_with_the_short_files_in_their_order():
    here = Path(conftest.__file__).parent
    assert all((here / name).is_file() for name in conftest.SLOW_FILES)
    names = ["test_a.py", conftest.SLOW_FILES[1], "test_b.py", conftest.SLOW_FILES[0], "test_a.py"]
    items = [SimpleNamespace(path=here / name, markers=[]) for name in names]
    for item in items:
        item.add_marker = item.markers.append
    conftest.pytest_collection_modifyitems(None, items)
    assert [item.path.name for item in items] == [*conftest.SLOW_FILES[:2], "test_a.py", "test_b.py", "test_a.py"]
    assert [[m.name for m in item.markers] for item in items] == [["slow"], ["slow"], [], [], []]
