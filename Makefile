# The two commands a newcomer needs: `make run` (the whole pipeline on the embedded default) and
# `make test`. Both set themselves up: .venv, pinned dependencies, ffmpeg, a quiet offline environment.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vgan-installed

export DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export PYTHONDONTWRITEBYTECODE := 1
# The float stages' CPU code paths (vgan/util/cpu.py; README, "Reproducing the reference run"): native (the CPU's widest:
# fastest, the committed reference) or avx2 (the same bits on any Intel x86-64 CPU with AVX2, 1.28x slower training here). The
# `vgan` CLI applies it from a plain shell too; here it can be set on the command line: `make run VGAN_CPU_ISA=avx2`.
export VGAN_CPU_ISA ?= native
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test check-reference setup ffmpeg system-deps mlflow-ui exps bench clean

run: setup
	$(BIN)/dvc repro
	@$(BIN)/python -m vgan.summary

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# After `make run`: does this run reproduce the committed reference (dvc.lock and metrics/evaluate.json at HEAD)?
# One line per stage, by content hash; CHECK_REFERENCE_ARGS='--rev REV' or '--rtol 1e-4' (see the script's --help).
check-reference: $(STAMP)
	@$(BIN)/python scripts/check_reference.py $(CHECK_REFERENCE_ARGS)

setup: $(STAMP) system-deps
	@git rev-parse --git-dir >/dev/null 2>&1 || { git init -q && echo "initialised a git repository (DVC needs one)"; }

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# ffmpeg (all stages), postgresql (the MLflow-on-PostgreSQL test), bsdtar (UCF101's RAR archive) and
# chromium (the test that draws `dvc plots show`'s page with no network).
system-deps:
	@bash scripts/install_system_deps.sh

# `dvc exp show` has no setting for its default columns (it shows every param of every stage), so this is the
# compact view: the headline metrics and the settings that differ between the experiments shown.
EXP_COLUMNS := ^(fd_evaluator|fd_evaluator_ci_low|fd_evaluator_ci_high|baseline_static_fd_evaluator|baseline_shuffled_fd_evaluator|is_evaluator|model\.name|train\.steps)$$
exps: setup
	@$(BIN)/dvc exp show --no-pager --only-changed --keep '$(EXP_COLUMNS)' $(EXP_SHOW_ARGS)

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

bench: setup
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_data.py

clean:
	rm -rf data/raw data/shards checkpoints models samples metrics reports plots mlflow.db mlartifacts
