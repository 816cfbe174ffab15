# One entry point for people and CI. `make test` is what .ci/run calls.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install jars lint types unit test check demo bench

install:
	$(PIP) install -q -e '.[dev]'
	$(PYTHON) dev/kafka.py jars

jars:
	$(PYTHON) dev/kafka.py jars

lint:
	$(PYTHON) -m ruff check syncd tests bench dev
	$(PYTHON) -m ruff format --check syncd tests bench dev

types:
	$(PYTHON) -m mypy

# Lint, types, then every test (the Kafka tests start their own broker).
check: lint types
	$(PYTHON) -m pytest -q

test: install check

demo: install
	$(PYTHON) dev/demo.py

bench: install
	$(PYTHON) bench/compute.py
