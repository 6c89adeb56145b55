#!/usr/bin/env bash
# Installs every build and test dependency of KnowledgeBeast from Debian 12 packages, plus the S3
# test server (the npm package s3rver) into the repository-local, git-ignored .cache/s3rver.
# Idempotent: a machine that already has everything is left alone (no apt-get update, no network).
# Must run as root (or with sudo available) on a fresh Debian 12 image.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# The S3 test server the blob and backup tests start (tests/support/s3rver_fixture.cc finds it
# at this path). The version is pinned: its quirks are documented in the tests.
S3RVER_VERSION=3.7.1
S3RVER_DIR="$ROOT/.cache/s3rver"
# The official MCP TypeScript SDK, the client of the MCP end-to-end test (tests/e2e/mcp_client.cjs
# loads it from this path). Pinned: the protocol revisions it speaks are what the test checks.
MCP_SDK_VERSION=1.32.2
MCP_SDK_DIR="$ROOT/.cache/mcp-sdk"

PACKAGES=(
  build-essential cmake pkg-config ccache git ca-certificates curl ninja-build lld
  libsqlite3-dev sqlite3
  libhnswlib-dev
  libcpp-httplib-dev
  libboost-dev
  nlohmann-json3-dev
  libzstd-dev zstd
  libssl-dev openssl
  libcurl4-openssl-dev
  libpoppler-cpp-dev
  libgumbo-dev
  libspdlog-dev libfmt-dev
  libcli11-dev
  libgtest-dev libgmock-dev
  libbenchmark-dev
  python3 zlib1g-dev clang
  python3-boto3
  prometheus
  time procps
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js with npm runs s3rver. Any node >= 18 with npm will do: the machine image ships Node 20
# from nodesource (npm included, so Debian's `npm` package would conflict with it); a bare Debian 12
# gets its own nodejs 18 + npm.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1
    fi
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

installed_s3rver_version() {
  node -p "require('$S3RVER_DIR/node_modules/s3rver/package.json').version" 2>/dev/null || true
}

if [ "$(installed_s3rver_version)" != "$S3RVER_VERSION" ]; then
  echo "install-deps: installing s3rver@$S3RVER_VERSION into $S3RVER_DIR" >&2
  mkdir -p "$S3RVER_DIR"
  npm install --prefix "$S3RVER_DIR" --save-exact --no-audit --no-fund --loglevel=error \
    "s3rver@$S3RVER_VERSION" >/dev/null
  if [ "$(installed_s3rver_version)" != "$S3RVER_VERSION" ]; then
    echo "install-deps: s3rver@$S3RVER_VERSION did not install into $S3RVER_DIR" >&2; exit 1
  fi
fi

installed_mcp_sdk_version() {
  node -p "require('$MCP_SDK_DIR/node_modules/@modelcontextprotocol/sdk/package.json').version" \
    2>/dev/null || true
}

if [ "$(installed_mcp_sdk_version)" != "$MCP_SDK_VERSION" ]; then
  echo "install-deps: installing @modelcontextprotocol/sdk@$MCP_SDK_VERSION into $MCP_SDK_DIR" >&2
  mkdir -p "$MCP_SDK_DIR"
  npm install --prefix "$MCP_SDK_DIR" --save-exact --no-audit --no-fund --loglevel=error \
    "@modelcontextprotocol/sdk@$MCP_SDK_VERSION" >/dev/null
  if [ "$(installed_mcp_sdk_version)" != "$MCP_SDK_VERSION" ]; then
    echo "install-deps: @modelcontextprotocol/sdk@$MCP_SDK_VERSION did not install into $MCP_SDK_DIR" >&2
    exit 1
  fi
fi
