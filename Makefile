# One entry point for people and CI. `make test` is what .ci/run calls.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install system-deps jars lint types imports unit test check demo bench

install:
	$(PIP) install -q -e '.[dev]'
	$(PYTHON) dev/kafka.py jars

# Debian packages the tests drive: Chromium (the operator page's browser test) and
# systemd-analyze (the unit file check). Installed only when missing; fails loudly.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi; \
	command -v chromium >/dev/null && command -v systemd-analyze >/dev/null

jars:
	$(PYTHON) dev/kafka.py jars

lint:
	$(PYTHON) -m ruff check syncd tests bench dev
	$(PYTHON) -m ruff format --check syncd tests bench dev

types:
	$(PYTHON) -m mypy

# The layer contract (pyproject.toml [tool.importlinter], docs/architecture.md).
imports:
	lint-imports

# Lint, types, the layer contract, then every test (the Kafka tests start their own broker).
check: lint types imports
	$(PYTHON) -m pytest -q

test: system-deps install check

demo: install
	$(PYTHON) dev/demo.py

bench: install
	$(PYTHON) bench/compute.py

# Every benchmark, the flash-sale simulation and the soak (~15 min): writes docs/benchmarks.md.
report: install
	$(PYTHON) bench/report.py
