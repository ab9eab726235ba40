# `make demo`: create .venv, install, train + export a BSR reward model offline on CPU.  `make test`: the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU torch wheel that satisfies the project's range; override e.g. TORCH=torch for your platform's default.
TORCH ?= torch==2.13.0
# Test workers (pytest-xdist): one per core by default, each on one torch thread; tests that start servers or process
# groups take their ports from a block of their worker's own (tests/conftest.py: free_port). JOBS=0: one process.
JOBS ?= auto
REWARDBENCH := 0.1.4
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install lint docs clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	# RewardBench's own code, for the tests that compare scores with it. rewardbench 0.1.4 pins
	# transformers==4.51.0, so it cannot be installed beside transformers 5: the tests read its wheel instead.
	$(PY) -m pip download -q --no-deps --dest $(VENV)/upstream "rewardbench==$(REWARDBENCH)"
	touch $@

demo: install
	$(PY) -m bsr_lightning fit --config configs/quickstart.yaml

test: install
	$(PY) -m pytest -n $(JOBS) --dist loadfile

# The manual as a website in build/docs, offline; any warning (a broken link, a missing reference) is an error.
docs: install
	$(PY) scripts/make_results_pages.py
	$(PY) scripts/make_cli_reference.py
	$(PY) -m sphinx -W --keep-going -q -E -b html docs build/docs
	@echo "open build/docs/index.html"

lint: install
	$(VENV)/bin/ruff check src tests scripts

clean:
	rm -rf artifacts lightning_logs .pytest_cache build/docs
