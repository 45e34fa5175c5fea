# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := demo
export OMP_NUM_THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup test demo clean

setup: $(STAMP)

# torch==2.13.0 is the CPU build these machines carry; an unpinned torch would pull
# several GB of CUDA packages, so it is installed first and only when torch is absent.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/tagtool make-dataset shapes --train 2000 --valid 500 --test 500 --single 100 \
		--out $(DEMO)/shapes.h5 --overwrite
	$(BIN)/tagtool show-dataset $(DEMO)/shapes.h5 --split test --n 16 --out $(DEMO)/shapes.png

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info
