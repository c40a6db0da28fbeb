#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds with -Werror, runs every
# C test (ctest; GPU tests skip without a device) and every end-to-end test
# (pytest; they start the real daemon on an ipc socket in a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
BUILD=${NEUROQ_BUILD:-$PWD/build}
cmake -S . -B "$BUILD" -DNEUROQ_WERROR=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
# the python-labelled ctest entries are the pytest suites run just below
ctest --test-dir "$BUILD" --output-on-failure -j"$(nproc)" -LE python
NEUROQ_BUILD="$BUILD" .venv/bin/python -m pytest -q -ra tests
