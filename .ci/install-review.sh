#!/usr/bin/env bash
# The review app's browser tests and screenshots: Debian's Chromium driven by Playwright for Python.
# Idempotent; run with the project's venv active (.ci/run calls it after activating). `playwright install` is never
# run: it downloads its own browser builds, which this CI cannot reach. Tests launch /usr/bin/chromium instead.
set -euo pipefail
started=$SECONDS
PLAYWRIGHT_VERSION=1.65.2

if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
python -m pip install -q "playwright==${PLAYWRIGHT_VERSION}"

echo "install-review: $(chromium --version 2>/dev/null | head -1), playwright ${PLAYWRIGHT_VERSION} in $((SECONDS - started)) s"
