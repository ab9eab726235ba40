"""scripts/time_tests.py, which writes the README's `make test` figure: its reading of pytest's summary."""

from conftest import load_script


def test_time_tests_reads_pytests_summary_line():
    counts = load_script("time_tests").summary_counts
    assert counts("455 passed, 1 skipped in 356.06s (0:05:56)") == {"passed": 455, "skipped": 1}
    assert counts("2 failed, 450 passed, 1 error in 9.00s") == {"failed": 2, "passed": 450, "errors": 1}
    assert counts("3 errors in 1.0s") == {"errors": 3} and counts("no tests ran in 0.01s") == {}
