"""The manual: ``make docs`` builds the site offline with no warnings, and its generated pages (results, CLI
reference) are what the JSON files and the parsers give."""

import json
import re
import subprocess
import sys

from conftest import REPO, load_script


def test_the_site_builds_with_no_warnings(tmp_path):
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html",
                           str(REPO / "docs"), str(tmp_path / "site")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for page in ("index", "guide/train", "results", "reproduction", "reference/cli", "reference/api"):
        assert (tmp_path / "site" / f"{page}.html").is_file(), page
    api = (tmp_path / "site/reference/api.html").read_text()
    for name in ("RewardModel", "RLOOPolicy", "BatchSumToZero", "Regularizer", "SharedPrefix", "SharedPrompt",
                 "PreferenceDataModule", "ModelReward"):
        assert re.search(rf'id="bsr_lightning\.[\w.]*\b{name}"', api), name
    assert (tmp_path / "site/_images").is_dir()  # the reproduction's plots were copied


def test_results_pages_are_current_and_equal_the_json():
    done = subprocess.run([sys.executable, str(REPO / "scripts/make_results_pages.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout
    module = load_script("make_results_pages")
    readme = (REPO / "README.md").read_text()
    for what, name, key, *_ in module.BENCHMARKS:
        ratio = module.get(json.loads((REPO / "docs" / name).read_text()), key)
        row = next(line for line in readme.splitlines() if line.startswith(f"| {what} |"))
        assert re.search(rf"\*\*{ratio:.2f}x\*\* \| `docs/{name}`", row), (row, ratio)


def test_cli_reference_is_current():
    done = subprocess.run([sys.executable, str(REPO / "scripts/make_cli_reference.py"), "--check"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    page = (REPO / "docs/reference/cli.md").read_text()
    assert "usage: python -m bsr_lightning [options] fit" in page
    assert "__main__.py" not in page and "usage: make_cli_reference.py" not in page
