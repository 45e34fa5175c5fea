# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := demo
export OMP_NUM_THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup test demo table2-cpu clean

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

# Shapes on CPU in a few minutes: make a small set, train the shapes-small preset, draw the
# groups per iteration, and print the AMI per iteration on the test split.
demo: setup
	mkdir -p $(DEMO)
	$(BIN)/tagtool make-dataset shapes --train 5000 --valid 500 --test 1000 --single 0 \
		--out $(DEMO)/shapes.h5 --overwrite
	$(BIN)/tagtool train --data $(DEMO)/shapes.h5 --out $(DEMO)/run --preset shapes-small --overwrite
	$(BIN)/tagtool visualize $(DEMO)/run --n 4 --out $(DEMO)/tagger.png
	$(BIN)/tagtool evaluate $(DEMO)/run --iterations 5 --json $(DEMO)/evaluation.json

# The paper's Table 2 at CPU scale (docs/benchmark.md): about two hours on two cores, a cell
# at a time; run it again to go on after a stop. Needs the MNIST IDX files.
TABLE2_CPU ?= ../runs/table2-cpu
export TAGDATA_MNIST_DIR ?= ../shared/data/mnist
table2-cpu: setup
	mkdir -p $(TABLE2_CPU)
	$(BIN)/tagtool benchmark --scale cpu --out $(TABLE2_CPU) --quiet
	$(BIN)/tagtool benchmark --scale cpu --out $(TABLE2_CPU) --quiet --permute-pixels --method convnet
	$(BIN)/tagtool benchmark --scale cpu --out $(TABLE2_CPU) --quiet --permute-pixels --method tagger \
		--dataset texture-mnist2

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info
