# Two commands do all set-up: `make run` and `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DB ?= var/diversity.duckdb
DEMO_STUDIES ?= 200000
DEMO_SEED ?= 2026
PORT ?= 8501

.PHONY: run test lint bench demo clean-demo

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Built only when no index exists yet.
$(DB): | $(VENV)/.installed
	$(PY) -m dashboard demo --db $(DB) --studies $(DEMO_STUDIES) --seed $(DEMO_SEED)

run: $(VENV)/.installed $(DB)
	DIVERSITY_DB=$(abspath $(DB)) $(VENV)/bin/streamlit run streamlit_app.py \
		--server.address 127.0.0.1 --server.port $(PORT) --server.headless true \
		--browser.gatherUsageStats false

test: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 2 --dist loadgroup

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(VENV)/.dev-installed
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/dicom.py
	$(PY) benchmarks/gaps.py
	$(PY) benchmarks/dashboard.py
	$(PY) benchmarks/load.py

demo: $(VENV)/.installed
	$(PY) -m dashboard demo --db $(DB) --studies $(DEMO_STUDIES) --seed $(DEMO_SEED) --replace
