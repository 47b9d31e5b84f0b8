#!/usr/bin/env bash
# The training tools that tests/test_training_tools.py runs for real, each in a venv of its own (never the project's):
# axolotl and unsloth, at the exact versions of .ci/training/NAME.txt (a full `pip freeze`, installed with --no-deps so
# nothing else is resolved), on the CPU build of torch 2.13.0. unsloth's lock leaves torchvision out on purpose: PyPI's
# torchvision is built for the CUDA torch and fails to import beside the CPU one, and unsloth trains text without it.
# Idempotent: a venv whose lock file is unchanged is kept. The tests find the venvs in .ci/venvs/NAME
# (HEGELION_AXOLOTL_VENV / HEGELION_UNSLOTH_VENV override that).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

install_venv() {  # NAME: .ci/training/NAME.txt -> .ci/venvs/NAME
    local name=$1 venv=.ci/venvs/$1 lock=.ci/training/$1.txt
    local want
    want=$(sha256sum "$lock" | cut -d' ' -f1)
    if [ -f "$venv/.lock-sha256" ] && [ "$(cat "$venv/.lock-sha256")" = "$want" ]; then
        echo "install-training: $name is up to date ($venv)"
        return
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    # pip names every local index folder a package is not in: one line per package, nothing to act on.
    "$venv/bin/pip" install --quiet --no-deps --no-input -r "$lock" 2>&1 | { grep -v "is ignored: it is neither" || true; }
    echo "$want" >"$venv/.lock-sha256"
    echo "install-training: $name installed in $((SECONDS - start)) s ($(du -sh "$venv" | cut -f1))"
}

# Both at once: the two installs wait on the disk and the network as much as on the 2 cores.
install_venv axolotl &
axolotl=$!
install_venv unsloth &
unsloth=$!
wait "$axolotl"
wait "$unsloth"
echo "install-training: done in $((SECONDS - start)) s"
