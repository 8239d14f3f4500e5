#!/usr/bin/env bash
# The demo (`make demo`): starts selene-server with its embedded defaults (state under ./var,
# SQLite, CPU) on a free loopback port, submits the synthetic-moon U-Net job
# (configs/demo_moon_unet.json) and watches it with the progress bar, downloads the best
# checkpoint and the report, segments a sample image into a mask and an overlay, prints where
# everything is and stops the server cleanly (SIGTERM; also on any failure, by the EXIT trap).
#
#   tools/demo.sh BUILD_DIR
set -euo pipefail

build_dir="${1:-build}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
case "$build_dir" in
  /*) ;;
  *) build_dir="$repo/$build_dir" ;;
esac

server_bin="$build_dir/bin/selene-server"
selene="$build_dir/bin/selene"
for bin in "$server_bin" "$selene"; do
  if [[ ! -x "$bin" ]]; then
    echo "demo: $bin not found; build first (make build BUILD_DIR=...)" >&2
    exit 2
  fi
done

state="var"
out="runs/demo"
sample="tools/demo/moon_sample.png"
mkdir -p "$state" "$out"
log="$state/demo-server.log"

server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || echo "demo: selene-server exited with status $?" >&2
  fi
  server_pid=""
}
trap stop_server EXIT

# Port 0: the server picks a free port and names it in its "listening on" line.
"$server_bin" --listen 127.0.0.1:0 --http_listen 127.0.0.1:0 --metrics_listen 127.0.0.1:0 \
  --state_dir "$state" >"$log" 2>&1 &
server_pid=$!
address=""
for _ in $(seq 1 300); do
  address="$(sed -n 's/^selene-server listening on \(.*\) (state .*/\1/p' "$log" | head -n 1)"
  [[ -n "$address" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "demo: selene-server did not start:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$address" ]]; then
  echo "demo: selene-server did not report its address within 30 s (log: $log)" >&2
  exit 1
fi
export SELENE_SERVER="$address"
echo "demo: selene-server listening on $address (state $repo/$state, log $repo/$log)"

# submit prints only the job id; watch draws the progress bar on a terminal.
job="$("$selene" submit configs/demo_moon_unet.json)"
echo "demo: submitted $job"
"$selene" watch "$job"

"$selene" download "$job" best.pt report.md curves.png samples.png --out "$out"
"$selene" segment --model "$job" "$sample" --out "$out" --overlay

# What Prometheus would scrape: a few of the server's own series.
metrics_url="$(sed -n 's/^selene-server metrics at \(.*\)$/\1/p' "$log" | head -n 1)"
if [[ -n "$metrics_url" ]] && command -v curl >/dev/null; then
  curl -fsS "$metrics_url" >"$out/metrics.txt" &&
    echo "demo: metrics at $metrics_url (saved to $out/metrics.txt), for example:" &&
    grep -E '^selene_(jobs_finished_total\{outcome="succeeded"|training_images_total|inference_requests_total|models_loaded)' \
      "$out/metrics.txt" | sed 's/^/  /'
fi

stop_server
echo
echo "demo: done in ${SECONDS}s. Job $job, files in $repo/$out:"
for name in best.pt report.md curves.png samples.png moon_sample_mask.png \
    moon_sample_overlay.png metrics.txt; do
  if [[ -e "$out/$name" ]]; then echo "  $out/$name"; fi
done
echo "demo: the job's full folder is $repo/$state/jobs/$job; the server log is $repo/$log."
