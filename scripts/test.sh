#!/usr/bin/env bash
# The README's test command: installs everything the tests need (CPU torch pinned first, then the
# package with all extras), then runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python3 -m pip install --quiet --disable-pip-version-check -e ".[all,test]"
python3 -m pip install --quiet --disable-pip-version-check --no-deps pytorchcv efficientnet-pytorch
python3 -m pytest "$@"
