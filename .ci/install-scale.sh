#!/usr/bin/env bash
# Ray for the batches on a local cluster (tests/test_scale.py), pinned, into the active venv (the [ray] extra's major).
# Idempotent; prints its wall time (about 15 s from pip's cache, 25 s from the index; 3 s when already installed).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

RAY_VERSION=2.60.0

python -m pip install --quiet --disable-pip-version-check "ray==$RAY_VERSION"
python -c "import ray; print('ray', ray.__version__)"

echo "install-scale: $((SECONDS - started)) s"
