# Two entry points: `make demo` and `make test`. Both create .venv on first use and
# reinstall only when requirements.lock or setup.cfg change (the stamp file records that).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv test demo bench ablation clean-demo gpu-check

venv: $(STAMP)

$(STAMP): requirements.lock requirements-nodeps.lock setup.cfg pyproject.toml setup.py occlusion_synth/landmarks/_shape68.c
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.lock
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.lock
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	bash scripts/demo.sh

bench: $(STAMP)
	$(PY) benchmarks/generate_speed.py
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/landmark_accuracy.py
	$(PY) benchmarks/demo_data_quality.py

# CUDA tests, ResNet-50 bench, demo epochs with AMP, torch.compile, NCCL DDP (2+ GPUs): <= 8 min;
# writes benchmarks/results/gpu.json, exits non-zero without a GPU
gpu-check: $(STAMP)
	$(PY) scripts/gpu_check.py

ablation: $(STAMP)
	$(VENV)/bin/fer-pi ablate --out runs/ablation --jobs 2

clean-demo:
	rm -rf data/demo data/demo_pairs runs/demo
