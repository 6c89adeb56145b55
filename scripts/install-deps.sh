#!/usr/bin/env bash
# Installs every build and test dependency of KnowledgeBeast from Debian 12 packages.
# Idempotent: a machine that already has everything is left alone (no apt-get update, no network).
# Must run as root (or with sudo available) on a fresh Debian 12 image.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config ccache git ca-certificates curl
  libsqlite3-dev sqlite3
  libhnswlib-dev
  libcpp-httplib-dev
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
  prometheus
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

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
