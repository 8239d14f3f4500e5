#!/usr/bin/env bash
# Installs every Debian package Selene needs to build, test and run, then the npm packages of the
# Node.js client test (tests/clients/node, from its package-lock.json).
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
  # cpp-httplib: the HTTP server under REST v2 (--http_listen) and GET /metrics (server/http/).
  libcpp-httplib-dev
  # Metrics tests: promtool checks the exposition format and the deploy files, and a real
  # Prometheus server scrapes selene-server (prometheus-cpp is not packaged; Selene writes the format).
  prometheus
  # The deploy-files test (tests/deploy) parses every YAML file under deploy/ with /usr/bin/python3.
  python3-yaml
  # `make check-format` (CI): every C++ file as .clang-format writes it.
  clang-format
  # The Open Inference clients no one here wrote (tests/clients): Python's grpcio with stubs that
  # protoc and grpc_python_plugin generate at test time, and curl for REST.
  python3-grpcio python3-protobuf curl
)
# Node.js and npm for tests/clients/node: Debian's only when none is on PATH (a newer Node.js
# installed some other way stays), and only next to the tests (the image's deps stage runs this
# script alone).
NODE_DIR="$(cd "$(dirname "$0")/.." && pwd)/tests/clients/node"
if [ -f "$NODE_DIR/package-lock.json" ] && ! { command -v node && command -v npm; } >/dev/null; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
      exit 1
    fi
    SUDO="sudo"
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm packages: `npm ci` when node_modules is missing or was installed from another lock file
# (the copy of the lock it was installed from is kept in node_modules). No install scripts:
# protobufjs's only checks versions.
if [ -f "$NODE_DIR/package-lock.json" ] &&
  ! cmp -s "$NODE_DIR/package-lock.json" "$NODE_DIR/node_modules/.selene-package-lock.json"; then
  echo "install-deps: npm ci in $NODE_DIR"
  (cd "$NODE_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  cp "$NODE_DIR/package-lock.json" "$NODE_DIR/node_modules/.selene-package-lock.json"
fi
