# Two commands for a fresh machine: `make demo` (the main job on built-in data) and `make test` (the suite).
# Both create .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Re-install only when the package metadata changes.
$(STAMP): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[all,dev]'
	$(PY) -c "import torch, torchvision, timm, accelerate, fairseq; print('installed torch', torch.__version__)"
	touch $(STAMP)

install: $(STAMP)

# Stages: the block library, supervised training, DINO pretraining + k-NN, translation (fairseq); each writes
# under outputs/demo.
demo: install
	$(PY) -m demo.foundation --out-dir outputs/demo
	$(PY) -m demo.vision --out-dir outputs/demo
	$(PY) -m demo.dino --out-dir outputs/demo
	$(PY) -m demo.seq2seq --out-dir outputs/demo/seq2seq

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) -m bench.inference

clean:
	rm -rf $(VENV) outputs build *.egg-info
