# tmtool: `make demo` runs the demo on the embedded simulator, `make test` runs every test,
# `make soak` runs the deterministic simulation over thousands of seeds.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-headless test bench soak screenshots install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tmtool demo

demo-headless: $(STAMP)
	$(VENV)/bin/tmtool demo --no-ui --duration 60

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) -m benchmarks

# The deterministic simulation over thousands of seeds per must-pass profile (make soak SOAK_SEEDS=0-9999).
SOAK_SEEDS ?= 0-1999
soak: $(STAMP)
	$(PY) -m tests.simulation --seeds $(SOAK_SEEDS) --steps 400 --profile ci

# The README's pictures, exported by the app itself (seeded data, fixed clock).
screenshots: $(STAMP)
	$(PY) -m tests.ui.screenshots docs/screenshots

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
