# Quick start: `make run` and `make test` each set up .venv (once, and again when pyproject.toml or the bundled-model pins change).
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint bench head clean

$(STAMP): pyproject.toml classifier/bundled-requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test,scale]'
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r classifier/bundled-requirements.txt
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/moodbot run

test: setup
	$(PYTHON) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(VENV)/bin/moodbot bench

# Re-train the shipped head from ../shared/data: bit-for-bit on an x86-64 CPU (same date, empty cache).
head: setup
	SOURCE_DATE_EPOCH=$$($(PYTHON) -c "import json,datetime as d;print(int(d.datetime.fromisoformat(json.load(open('classifier/heads/minilm-l6-sst2-tweets.json'))['training']['date']).replace(tzinfo=d.timezone.utc).timestamp()))") \
	MOODBOT_CACHE_DIR=$$(mktemp -d) $(VENV)/bin/moodbot train --out classifier/heads/minilm-l6-sst2-tweets.json

clean:
	rm -rf $(VENV) var .pytest_cache
