# Two commands do all the set-up on a fresh machine:
#   make run   - create .venv, install, start the app on the bundled sample series
#   make test  - create .venv, install, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast run serve demo benchmark samples browser clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	bash scripts/ensure_test_tools.sh
	$(BIN)/python -m pytest -q --doctest-modules src/repigment tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not browser and not slow" tests

run: $(STAMP)
	$(BIN)/streamlit run app.py

# The app on the clinic's network: only once clinic accounts exist (everyone then signs in).
# Put it behind HTTPS (see README, "Accounts and a clinic network").
serve: $(STAMP)
	$(BIN)/repigment accounts check
	$(BIN)/streamlit run app.py --server.address 0.0.0.0

demo: $(STAMP)
	$(BIN)/repigment analyze sample_images/series_a --out out/demo_series_a

benchmark: $(STAMP)
	$(BIN)/python benchmarks/accuracy.py

samples: $(STAMP)
	$(BIN)/python scripts/make_samples.py

clean:
	rm -rf $(VENV) out .pytest_cache
