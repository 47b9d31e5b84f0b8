#!/usr/bin/env bash
# CI for the scale area (issue 15): Ray for the batches on a local cluster (tests/test_scale.py), into the active venv.
# Idempotent; the same major as the [ray] extra, pinned exactly here. About 25 s on a fresh 2-core machine.
set -euo pipefail
started=$(date +%s)
python -m pip install --quiet "ray==2.60.0"
python -c "import ray; print('ray', ray.__version__)"
echo "install-scale: $(($(date +%s) - started)) s"
