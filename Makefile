# Lowerdir: `make run` serves the app on embedded defaults; `make test` installs and runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_ENV := DJANGO_DEBUG=1 LOWERDIR_DATA_DIR=$${LOWERDIR_DATA_DIR:-$(CURDIR)/var}

.PHONY: run test lint install bench clean

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/activate

install: $(BIN)/activate

run: install
	$(RUN_ENV) $(BIN)/python manage.py migrate --no-input
	$(RUN_ENV) $(BIN)/python manage.py ensure_admin
	@echo "Lowerdir on http://127.0.0.1:8000/"
	$(RUN_ENV) $(BIN)/python manage.py serve 127.0.0.1:8000

lint: install
	$(BIN)/ruff check .

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/scan_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
