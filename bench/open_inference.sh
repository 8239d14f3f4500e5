#!/usr/bin/env bash
# The Open Inference Protocol's cost next to selene.v1 Segment, in one run: starts a
# selene-server on a temporary state dir, trains the benchmark U-Net (1 epoch on synthetic_moon,
# 128x128), then drives it with selene-load --compare (Segment with a PNG, ModelInfer with raw
# UINT8 pixels, ModelInfer with the PNG as BYTES) at each concurrency. Prints one JSON line per
# concurrency; docs/benchmarks.md reports them.
#
#   bench/open_inference.sh [BUILD_DIR] (env: SECONDS_PER_RUN=10 CONCURRENCY="1 4")
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-build}/bin"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
CONCURRENCY="${CONCURRENCY:-1 4}"
work="$(mktemp -d /tmp/selene-open-inference-bench.XXXXXX)"
trap 'kill "$server_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN/selene-server" --state_dir "$work/state" --listen 127.0.0.1:0 --metrics_listen "" \
  --http_listen "" --inference_threads 1 >"$work/server.log" 2>&1 &
server_pid=$!
address=""
for _ in $(seq 600); do
  address="$(sed -n 's/^selene-server listening on \([^ ]*\).*/\1/p' "$work/server.log" | head -1)"
  [[ -n "$address" ]] && break
  kill -0 "$server_pid" || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$address" ]] || { echo "open_inference.sh: the server never listened" >&2; exit 1; }

cat >"$work/unet.json" <<'SPEC'
{"name": "bench-unet", "task": "binary_segmentation", "model": {"unet": {}},
 "data": {"kind": "synthetic_moon", "num_samples": 64, "image_size": 128},
 "training": {"epochs": 1, "batch_size": 16, "seed": 1}}
SPEC
job="$("$BIN/selene" --server "$address" submit "$work/unet.json")"
"$BIN/selene" --server "$address" watch "$job" >"$work/watch.log" 2>&1 ||
  { echo "open_inference.sh: $job did not succeed" >&2; tail -5 "$work/watch.log" >&2; exit 1; }

for c in $CONCURRENCY; do
  "$BIN/selene-load" --server "$address" --model "$job" --concurrency "$c" \
    --seconds "$SECONDS_PER_RUN" --compare
done
