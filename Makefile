# Quick start: `make run` and `make test` each set up .venv (once, and again when pyproject.toml or the bundled-model pins change).
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test cluster cluster-test lint bench head clean

$(STAMP): pyproject.toml classifier/bundled-requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test,scale]'
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r classifier/bundled-requirements.txt
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/moodbot run

test: setup
	tests/support/system_packages.sh chromium
	$(PYTHON) -m pytest

# The scale-out topology on this machine (PostgreSQL, Redis, Ray Serve, fake Discord, 2 shard processes): prints
# its URLs, Ctrl-C stops it. `cluster-test` runs the cluster test alone (`test` includes it) and prints its figures.
cluster: setup
	$(PYTHON) -m tests.support.cluster

cluster-test: setup
	$(PYTHON) -m pytest tests/cluster

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(VENV)/bin/moodbot bench

# Re-train every shipped head (classifier/heads/recipes.py's RECIPES: one file classifier/shipped/<encoder>.<task>.json
# each) from ../shared/data and classifier/datasets, bit for bit on an x86-64 CPU: each with the date its file records
# (today for a new head), over one empty cache large enough that no recipe's vectors evict another's (about 2 GB),
# ignoring any MOODBOT_HEAD / MOODBOT_MODEL of the environment.
define SHIPPED_HEADS
import datetime, json
from classifier.encoders.bundled import HEADS_DIR
from classifier.heads.recipes import RECIPES
for recipe in RECIPES:
    path = HEADS_DIR / f"{recipe.name}.json"
    date = (datetime.date.fromisoformat(json.loads(path.read_text())["training"]["date"]) if path.is_file()
            else datetime.datetime.now(datetime.UTC).date())
    epoch = int(datetime.datetime(date.year, date.month, date.day, tzinfo=datetime.UTC).timestamp())
    print(recipe.name, path, epoch)
endef
export SHIPPED_HEADS

head: setup
	$(PYTHON) -c "$$SHIPPED_HEADS" > $(VENV)/shipped-heads.txt
	cache=$$(mktemp -d) && while read -r recipe out epoch; do \
	  SOURCE_DATE_EPOCH=$$epoch MOODBOT_CACHE_DIR=$$cache MOODBOT_CACHE_SIZE_MB=16384 \
	  MOODBOT_HEAD= MOODBOT_MODEL= MOODBOT_DEVICE=cpu $(VENV)/bin/moodbot train --recipe $$recipe --out $$out || exit 1; \
	done < $(VENV)/shipped-heads.txt; rm -rf $$cache

clean:
	rm -rf $(VENV) var .pytest_cache
