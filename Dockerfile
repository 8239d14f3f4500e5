# Selene's CPU image: selene-server, the selene CLI and selene-train on Debian bookworm.
#
#   podman build --isolation chroot --format docker -t selene .     # or: docker build -t selene .
#   podman run -d -p 50051:50051 -p 8000:8000 -p 9464:9464 -v selene-state:/var/lib/selene \
#       -v /path/to/datasets:/data:ro selene
#
# --format docker keeps the HEALTHCHECK (the OCI image format has no field for it; podman drops
# it with a warning). deploy/image-check.sh builds and proves this image without a Docker engine;
# docs/deployment.md covers compose, Kubernetes and a CUDA build.
#
# Two build stages and a runtime stage, all on the same bookworm base so that the runtime
# packages are exactly the ones the binaries were linked against.

# ---- deps: the toolchain and -dev packages, installed by the same script CI and `make` use ----
FROM debian:bookworm AS deps
ENV DEBIAN_FRONTEND=noninteractive
# Packages with daemons (prometheus, for the metrics tests) must not start them inside a build.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
COPY deploy/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

# ---- build: Release build of the three runtime binaries only (no tests, no benchmarks) ----
FROM deps AS build
# Parallel compile jobs; a torch translation unit takes 1.1-1.5 GB of memory to compile.
ARG JOBS=
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSELENE_BUILD_TESTS=OFF \
 && cmake --build /build ${JOBS:+--parallel $JOBS} --target selene-server selene selene-train \
 && strip --strip-unneeded /build/bin/selene-server /build/bin/selene /build/bin/selene-train

# ---- runtime: the binaries and the shared libraries they need, nothing else ----
FROM debian:bookworm
ENV DEBIAN_FRONTEND=noninteractive
# The packages of the libraries the binaries link directly (readelf -d NEEDED, then dpkg -S):
# LibTorch 1.13, OpenCV core/imgproc/imgcodecs 4.6, gRPC 1.51 (grpc++ with reflection, and core),
# protobuf 3.21, Abseil, SQLite, libpq (the PostgreSQL job store of fleet mode), OpenSSL,
# cpp-httplib 0.11 (REST v2 and /metrics). apt brings their own dependencies.
# libopenblas0-openmp is not linked directly but provides libblas.so.3 for LibTorch: without it
# torch falls back to the reference BLAS and convolutions and matmuls run 2-4x slower.
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      libtorch1.13 libopenblas0-openmp \
      libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 \
      libsqlite3-0 libpq5 libssl3 libcpp-httplib0.11 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it and volume ownership is
# predictable (chown 10001 on a host directory bind-mounted as the state dir).
RUN groupadd --system --gid 10001 selene \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/selene --no-create-home \
      --shell /usr/sbin/nologin selene \
 && mkdir -p /var/lib/selene /data \
 && chown selene:selene /var/lib/selene /data

COPY --from=build /build/bin/selene-server /build/bin/selene /build/bin/selene-train /usr/local/bin/

USER 10001:10001
WORKDIR /var/lib/selene
# State dir (SQLite job store, job folders, decoded-data cache; one server writes it at a time)
# and data root (data.path in job specs is relative to it; nothing outside it is read).
VOLUME ["/var/lib/selene", "/data"]
# gRPC (TrainingService, InferenceService, grpc.health.v1, reflection), REST v2 (Open Inference
# Protocol) and Prometheus metrics.
EXPOSE 50051 8000 9464

# `selene health` is grpc.health.v1.Health/Check; it exits 0 only when the server is SERVING
# (NOT_SERVING while it drains on SIGTERM, 3 when unreachable).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["selene", "--server", "127.0.0.1:50051", "--timeout", "5", "health"]

# The server handles SIGTERM itself (drain, checkpoint running jobs), so it runs as PID 1 with
# no shell in between. Extra flags go after the image name (`... selene --devices cpu
# --token_file /run/secrets/tokens`); absl flags given twice take the last value.
ENTRYPOINT ["selene-server", "--listen", "0.0.0.0:50051", "--http_listen", "0.0.0.0:8000", \
            "--metrics_listen", "0.0.0.0:9464", \
            "--state_dir", "/var/lib/selene", "--data_root", "/data"]
