#!/usr/bin/env bash
# Installs every Debian package Selene needs to build, test and run.
# Non-interactive and idempotent: when everything is present it only checks and exits.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  # LibTorch, and the OpenMP OpenBLAS it needs to be fast (without it: reference BLAS, 2-4x slower).
  libtorch-dev libopenblas0-openmp libgloo-dev libcivetweb-dev
  libopencv-dev
  libgrpc++-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libabsl-dev libsqlite3-dev
  # libpq: the PostgreSQL job store of fleet mode (--store postgresql://...).
  libpq-dev
  # The PostgreSQL server, for the tests' private instance (tests/testing/postgres_server.h).
  postgresql
  # OpenSSL: SHA-256 of artifacts and token digests; the openssl tool makes the TLS test certificate.
  libssl-dev openssl
  libgtest-dev libgmock-dev
  # Metrics tests: promtool checks the exposition format and the deploy files, and a real
  # Prometheus server scrapes selene-server (prometheus-cpp is not packaged; Selene writes the format).
  prometheus
  # The deploy-files test (tests/deploy) parses every YAML file under deploy/ with /usr/bin/python3.
  python3-yaml
  # `make check-format` (CI): every C++ file as .clang-format writes it.
  clang-format
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
