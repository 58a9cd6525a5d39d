# Targets CI calls too (.ci/run -> make test-all).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup lock system-deps lint typecheck test test-fast sanitize ci test-all demo serve bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Installs the exact versions in requirements.lock (what the suite last passed with), so a fresh
# machine tests what was tested; pyproject.toml keeps honest ranges for library users.
setup: $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock -e '.[dev]'

# Re-resolves the newest releases within pyproject.toml's ranges into requirements.lock.
lock:
	bash scripts/lock.sh

# lint-imports checks docs/architecture.md's dependency rules ([tool.importlinter] in pyproject.toml).
lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy src

# On by default: a test run fails if the compiled stream scan did not build (the Python twin
# would pass the tests, only slower). REQUIRE_COMPILED= turns the check off.
REQUIRE_COMPILED ?= 1

# The suite in two passes: every test but the `serial` ones (root implies serial: the live
# sensor, audit rules, network namespaces; the Spark cluster) on TEST_WORKERS pytest-xdist worker
# processes, then the serial ones alone. Both passes always run; the target fails if either did.
TEST_WORKERS ?= 2
define run_suite
status=0; \
$(BIN)/pytest -q -n $(TEST_WORKERS) -m '$(1)not serial' || status=1; \
$(BIN)/pytest -q -m '$(1)serial' || status=1; \
exit $$status
endef

test: setup
	export RECONWATCH_REQUIRE_COMPILED=$(REQUIRE_COMPILED); $(call run_suite,)

test-fast: setup
	$(call run_suite,not slow and )

ci: setup lint typecheck test

# The compiled stream scan under AddressSanitizer and UBSan (its tests; about half a minute).
sanitize: setup
	BIN=$(BIN) bash scripts/sanitize-scan.sh

# Everything on a fresh machine: system packages (as root), venv, lint, types, all tests, and
# the compiled scan's tests under the sanitizers.
test-all: system-deps ci sanitize

system-deps:
	bash scripts/install-system-deps.sh

demo: setup
	$(BIN)/reconwatch detect --demo

# The main job: the detection service on 127.0.0.1:9200 with the demo sample stored and every
# rule run over it (Ctrl-C stops it); its store is under .demo-store/, kept between runs.
serve: setup
	$(BIN)/reconwatch serve --demo --data-dir .demo-store

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .demo-store
