# tmtool: `make demo` runs the demo on the embedded simulator, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-headless test bench screenshots install clean

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

# The README's pictures, exported by the app itself (seeded data, fixed clock).
screenshots: $(STAMP)
	$(PY) -m tests.ui.screenshots docs/screenshots

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
