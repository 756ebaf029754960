# The README's two commands: `make demo` and `make test`. Each sets up .venv first (idempotent).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch and torchvision pinned to what the machine's wheel cache / SageMaker-compatible API allows;
# override with `make TORCH_SPEC="torch==2.8.0 torchvision==0.23.0" test`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-quick lint clean mutation mutation-sample

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency list changes (pyproject.toml declares every dependency once).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev]"
	# Upgrading from SageMaker SDK v2 uninstalls v2's files after v3's parts were installed over them (both are the
	# `sagemaker` namespace): put v3's parts back when that happened.
	AWS_DEFAULT_REGION=us-east-1 $(PY) -c "from sagemaker.train import ModelTrainer; from sagemaker.serve import ModelBuilder" \
		2>/dev/null || $(PY) -m pip install --quiet --force-reinstall --no-deps \
		$$($(PY) -m pip freeze | grep -E '^sagemaker(-core|-train|-serve|-mlops)?==')
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m entry_points.train --demo

test: install
	$(PY) -m pytest

test-quick: install
	$(PY) -m pytest -m "not slow"

# ruff (style, imports, stale noqa), mypy on dogbreed/, the import-linter contracts (layers; a serving core
# without Lightning; config as a leaf; no cycles), and the documentation site: any warning (a broken link or anchor,
# a page left out of the nav) fails the build. The site goes to site/ (git-ignored).
lint: install
	$(VENV)/bin/ruff check dogbreed entry_points tests bench tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

# Mutation testing (not in CI; issue 24): mutmut over one package of dogbreed/ with the fast tests that cover it.
# `make mutation PACKAGE=config` (tests/config), `make mutation PACKAGE=serving MUTATION_TESTS="tests/serving"`.
# mutmut 2.x edits the files in place and restores them: run it in a separate worktree when you keep working.
# Results: `.venv/bin/mutmut results`, `.venv/bin/mutmut show ID`. Hours for the big packages on 2 cores.
# One module, its tests in the order to run them (the fast edge tests first): `make mutation PACKAGE=core
# MUTATE=dogbreed/core/tta.py MUTATION_TESTS="tests/core/test_tta_edges.py tests/core/test_tta.py"`.
PACKAGE ?= config
MUTATE ?= dogbreed/$(PACKAGE)/
MUTATION_TESTS ?= tests/$(PACKAGE)
MUTATION_TESTS_DIR ?= tests/$(PACKAGE)  # what mutmut hashes to notice changed tests
MUTATION_TIMEOUT ?= 1200
MUTATION_PYTEST_ARGS ?= -m 'not slow'  # config: --noconftest (its tests need no fixture; no torch at start-up)
mutation: install
	$(PY) -m pip install --quiet -e ".[mutation]"
	nice -n 19 timeout $(MUTATION_TIMEOUT) $(VENV)/bin/mutmut run --paths-to-mutate $(MUTATE) \
		--tests-dir $(MUTATION_TESTS_DIR) \
		--runner "$(PY) tools/mutation_tests.py -x -q -p no:cacheprovider $(MUTATION_PYTEST_ARGS) $(MUTATION_TESTS)" || true
	$(VENV)/bin/mutmut results

# A seeded random sample of each subpackage's mutants (mutmut's operators), each run against the fast tests that
# cover its line (a coverage map with one context per test, built once): a score per subpackage with its 95%
# interval in minutes rather than hours. `make mutation-sample PACKAGES="serving data" SAMPLE=20`; run it in a
# separate worktree when you keep working (mutants are written into this tree's files, restored after each).
PACKAGES ?= cli config core data diagnostics explain export sagemaker serving training tuning
SAMPLE ?= 20
SEED ?= 24
MUTATION_OUT ?= outputs/mutation
mutation-sample: install
	$(PY) -m pip install --quiet -e ".[mutation]"
	test -f $(MUTATION_OUT)/map.json || nice -n 19 $(PY) tools/mutation_sample.py map --out $(MUTATION_OUT)/map.json
	for package in $(PACKAGES); do \
		nice -n 19 $(PY) tools/mutation_sample.py run --package $$package --sample $(SAMPLE) --seed $(SEED) \
			--map $(MUTATION_OUT)/map.json --results $(MUTATION_OUT)/$$package.jsonl --resume || exit 1; \
	done
	$(PY) tools/mutation_sample.py report $(MUTATION_OUT)/*.jsonl --equivalents tools/mutation_equivalents.json

clean:
	rm -rf outputs .pytest_cache site
