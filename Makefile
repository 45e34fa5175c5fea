# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := demo
export OMP_NUM_THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup test demo table1 table2-cpu gpu-check clean

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

# Shapes on CPU in under 3 minutes: make a small set, train the demo preset for the epochs that
# fit 2 minutes on this machine, draw the groups per iteration, and print AMI, ARI, FG-ARI and
# mSC per iteration on the test split.
DEMO_DATA ?= --train 5000 --valid 500 --test 1000 --single 0  # make-dataset overrides
DEMO_LENGTH ?= --budget-minutes 2  # or --epochs N: the same training on every machine
DEMO_OPTIONS ?=  # other options of the training, e.g. --threads 1
demo: setup
	mkdir -p $(DEMO)
	$(BIN)/tagtool make-dataset shapes $(DEMO_DATA) --out $(DEMO)/shapes.h5 --overwrite
	$(BIN)/tagtool train --data $(DEMO)/shapes.h5 --out $(DEMO)/run --preset demo --overwrite $(DEMO_LENGTH) $(DEMO_OPTIONS)
	$(BIN)/tagtool visualize $(DEMO)/run --n 4 --out $(DEMO)/tagger.png
	$(BIN)/tagtool evaluate $(DEMO)/run --iterations 5 --quiet --json $(DEMO)/evaluation.json

# The paper's Table 1a (Shapes, Section 3.2) and the generalisation of Section 3.1: Tagger
# (BatchNorm) and Tagger* (LayerNorm) with the shapes-paper preset, 100 epochs each (about
# 2 x 100 min on a 2-core CPU with AMX, bf16 compiled: docs/table1.md), evaluated with 5 iterations. Run it
# again after a stop: finished steps are kept and a stopped training resumes.
TABLE1 ?= ../runs/table1
TABLE1_SETS := shapes-2obj shapes shapes-4obj
TABLE1_DATA ?=     # make-dataset overrides, e.g. --train 200 for a trial
TABLE1_OPTIONS ?=  # options of a new training, e.g. --epochs 1
table1: setup
	mkdir -p $(TABLE1)
	for set in $(TABLE1_SETS); do test -f $(TABLE1)/$$set.h5 || \
		$(BIN)/tagtool make-dataset $$set $(TABLE1_DATA) --out $(TABLE1)/$$set.h5 || exit 1; done
	for norm in batch layer; do run=$(TABLE1)/shapes-paper-$$norm; \
		if test -f $$run/config.json; then $(BIN)/tagtool train --out $$run --resume || exit 1; \
		else $(BIN)/tagtool train --data $(TABLE1)/shapes.h5 --out $$run --preset shapes-paper \
			--norm $$norm --compile $(TABLE1_OPTIONS) || exit 1; fi; \
		$(BIN)/tagtool evaluate $$run --iterations 5 --quiet --json $$run.json || exit 1; done
	$(BIN)/tagtool table1 $(TABLE1)/shapes-paper-batch.json $(TABLE1)/shapes-paper-layer.json \
		--out $(TABLE1)/table1.md
	$(BIN)/tagtool generalization $(TABLE1)/shapes-paper-layer --limit 2000 \
		$(foreach set,$(TABLE1_SETS),--data $(TABLE1)/$(set).h5) \
		--json $(TABLE1)/generalization.json --out $(TABLE1)/generalization.md

# The paper's Table 2 at CPU scale (docs/benchmark.md): about two hours on two cores, a cell
# at a time; run it again to go on after a stop. Needs the MNIST IDX files.
# TABLE2_OPTIONS="--executor local --max-parallel 4" runs the cells on a pool of workers.
TABLE2_CPU ?= ../runs/table2-cpu
TABLE2_OPTIONS ?=
export TAGDATA_MNIST_DIR ?= ../shared/data/mnist
table2-cpu: setup
	mkdir -p $(TABLE2_CPU)
	$(BIN)/tagtool benchmark --scale cpu --out $(TABLE2_CPU) --quiet $(TABLE2_OPTIONS)
	$(BIN)/tagtool benchmark --scale cpu --out $(TABLE2_CPU) --quiet --permute-pixels --method convnet $(TABLE2_OPTIONS)
	$(BIN)/tagtool benchmark --scale cpu --out $(TABLE2_CPU) --quiet --permute-pixels --method tagger \
		--dataset texture-mnist2 $(TABLE2_OPTIONS)

# The prepared check of the CUDA path (docs/gpu.md): smoke training, exact resume, evaluation,
# the host-sync check of every training step under CUDA's sync debug mode, and speed-train
# of the paper presets, all as JSON under $(GPU_CHECK); a few minutes on one GPU.
GPU_CHECK ?= ../runs/gpu-check
gpu-check: setup
	$(BIN)/tagtool gpu-check --out $(GPU_CHECK)

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info
