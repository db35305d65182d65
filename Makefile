# Two commands on a fresh machine: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup tools demo test lint typecheck unit docs bench mutation mutation-planted fuzz constraints clean

$(STAMP): pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e ./sandbox
	touch $(STAMP)

setup: $(STAMP)

# promtool checks and unit-tests deploy/prometheus/rotator-rules.yaml; Debian's prometheus package has it.
# faketime skews one replica's clock in the replica tests; Debian's faketime package has it.
# $(call debian_tool,COMMAND,PACKAGE): install a Debian package when its command is missing (as root)
debian_tool = command -v $(1) >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(1) (Debian package $(2))"; \
	    apt-get install -y -qq --no-install-recommends $(2) >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $(2) >/dev/null; }; \
	  else \
	    echo "the tests need $(1): install Debian's '$(2)' package or put $(1) on PATH" >&2; exit 1; \
	  fi; }

tools:
	@$(call debian_tool,promtool,prometheus)
	@$(call debian_tool,faketime,faketime)

demo: $(STAMP)
	$(BIN)/rotator demo

lint: $(STAMP)
	$(BIN)/ruff check rotator sandbox tests benchmarks mutation
	$(BIN)/ruff format --check rotator sandbox tests benchmarks mutation
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# two workers, one test file each at a time: every worker starts its own servers once (moto, the
# sandboxes, OpenBao, a PostgreSQL database), so files never share state
test: lint typecheck tools
	$(BIN)/pytest -q -n 2 --dist loadfile

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# docs/settings.md, generated from the settings models (tests/unit/test_docs.py fails when it is stale)
docs: $(STAMP)
	$(BIN)/python -m rotator.settings.reference --write

bench: $(STAMP)
	$(BIN)/python benchmarks/incident.py
	$(BIN)/python benchmarks/fleet.py
	$(BIN)/python benchmarks/replicas.py

# the loader fuzzer at length: 10,000 mutated rotator.yaml and 10,000 mutated policy files (minutes; the
# suite's 300 s per-test timeout would cut it short)
fuzz: $(STAMP)
	ROTATOR_FUZZ_EXAMPLES=10000 $(BIN)/pytest -q -s -p no:cacheprovider --timeout=0 tests/unit/test_fuzz_loader.py

# mutation testing with mutmut (a dev dependency, so the venv stamp installs it): one module group at a
# time (engine, lease, ratelimit, windows, schedule, grants-hooks, leaked, outbox, http, stores), each
# mutant against the unit and integration tests that call the mutated function; prints each group's
# kill rate against its target and lists the survivors not explained in mutation/equivalent.txt.
# A fixed sample of each group's mutants (MUTATION_SAMPLE, 0 for all: hours on 2 cores), tens of
# minutes a group on 2 cores, never part of `test`. `make mutation GROUPS="engine lease"` runs some;
# `make mutation-planted` runs the hand-planted bugs mutmut cannot make (mutation/run.py).
GROUPS ?=
MUTATION_WORKERS ?= 2
MUTATION_SAMPLE ?= 100
mutation: $(STAMP)
	$(BIN)/python mutation/mutate.py --max-children $(MUTATION_WORKERS) --sample $(MUTATION_SAMPLE) $(GROUPS)

mutation-planted: $(STAMP)
	$(BIN)/python mutation/run.py

# the container image's pinned dependencies, resolved afresh from pyproject.toml in a throwaway venv
constraints:
	rm -rf .venv-constraints && $(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/pip install --quiet '.[postgres]'
	{ echo "# Pinned runtime dependencies of the container image (pip install -c constraints.txt '.[postgres]')."; \
	  echo "# Regenerate after changing pyproject.toml: make constraints"; \
	  .venv-constraints/bin/pip freeze --exclude rotator; } > constraints.txt
	rm -rf .venv-constraints

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info mutants
