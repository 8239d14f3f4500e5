#!/usr/bin/env bash
# bench/run.sh: Selene against the PyTorch Python script a user would write instead (Debian's
# python3-torch on /usr/bin/python3: the same LibTorch 1.13.1), measured side by side in one run
# on this machine, as ratios. Not part of ctest. About 15 minutes on 2 cores once built (864 s
# on 2026-11-23).
#
#   bench/run.sh                      # builds into build/ (or $BUILD_DIR), runs everything
#   BUILD_DIR=build-bench bench/run.sh
#   QUICK=1 bench/run.sh              # a smoke run: one round, short timings, fewer classes
#   SECTIONS="3" bench/run.sh         # only some sections (1 training, 2 epochs, 3 serving and
#                                     # memory); the report covers what ran
#   WORK=/tmp/selene-bench.XXXX SECTIONS="1" bench/run.sh   # re-run a section of an earlier run
#   QUIET_WAIT_S=0 bench/run.sh       # never wait for the machine to go quiet (default: up to 180 s)
#
# Sections: 1. training throughput (synthetic tensors) with FLOPs and the float32 and bfloat16
# matmul peaks, each model in two configurations on both sides: fp32 (the default, the same
# kernels on both sides) and "fast" (bf16 autocast + channels-last: Selene's
# training.precision = "bf16" and training.channels_last = true); 2. one epoch from real-format
# files, fp32 and fast (Tiny ImageNet sample JPEGs; MOON-layout PNGs written
# here) against Dataset + DataLoader(num_workers=2) + torchvision transforms; 3. inference in
# process against PyTorch eager, then Segment over gRPC from selene-load at concurrency 1, 4, 16
# with batching off and on; 4. selene-server's resident memory. Writes bench/results/DATE.json and
# the generated section of docs/benchmarks.md (bench/report.py).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$repo/$BUILD_DIR" ;; esac
THREADS="${THREADS:-$(nproc)}"
QUICK="${QUICK:-0}"
DATA="${SELENE_SHARED_DATA:-$repo/../shared/data}"
PY=/usr/bin/python3
BIN="$BUILD_DIR/bin"
date_tag="$(date -u +%Y-%m-%d)"
results="$repo/bench/results/$date_tag.json"
# WORK=DIR reuses a previous run's raw outputs: a section re-run (SECTIONS=...) replaces its own
# files there, and the report covers them all.
if [[ -n "${WORK:-}" ]]; then
  work="$WORK"
  mkdir -p "$work"
else
  work="$(mktemp -d /tmp/selene-bench.XXXXXX)"
fi
# Every log line also records the load average: this machine is shared, and a section measured
# while something else ran shows it there (bench/report.py reports the range).
log() {
  printf '[bench %5ds] %s (load %s)\n' "$SECONDS" "$*" "$(cut -d' ' -f1 /proc/loadavg)" >&2
  cut -d' ' -f1 /proc/loadavg >>"$work/loadavg"
}

if [[ "$QUICK" == 1 ]]; then
  ROUNDS=1; UNET_STEPS=3; CLF_STEPS=2; SERVE_SECONDS=2; LOAD_SECONDS=3; CLASSES=2; MOON_PAIRS=60
else
  ROUNDS=3; UNET_STEPS=10; CLF_STEPS=4; SERVE_SECONDS=5; LOAD_SECONDS=10; CLASSES=10; MOON_PAIRS=200
fi
CLASSES="${CLASSES_OVERRIDE:-$CLASSES}"
# The fast configuration (bf16 + channels-last) runs about 2-4x faster: twice the steps keeps
# its timed stretch about as long as the fp32 one's.
FAST_UNET_STEPS=$((2 * UNET_STEPS)); FAST_CLF_STEPS=$((2 * CLF_STEPS))
SECTIONS="${SECTIONS:-1 2 3}"
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
# Two OpenMP threads on two cores slow down several-fold when anything else runs (a spinning
# thread waits for its preempted partner), so before each two-thread measurement the run waits,
# up to QUIET_WAIT_S seconds, for the rest of the machine to go quiet: under a fifth of a core
# busy over 5 s. 0 = never wait.
QUIET_WAIT_S="${QUIET_WAIT_S:-180}"
wait_quiet() {
  ((QUIET_WAIT_S > 0)) || return 0
  local deadline=$((SECONDS + QUIET_WAIT_S)) a b busy
  while ((SECONDS < deadline)); do
    read -r -a a </proc/stat
    sleep 5
    read -r -a b </proc/stat
    # user + nice + system + irq + softirq + steal, in 1/100 s, over 5 s (all cores)
    busy=$(((b[1] + b[2] + b[3] + b[6] + b[7] + b[8]) - (a[1] + a[2] + a[3] + a[6] + a[7] + a[8])))
    ((busy < 100)) && return 0
  done
  log "the machine is still busy after ${QUIET_WAIT_S}s of waiting; measuring anyway"
}

# ------------------------------------------------------------------ dependencies and build
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi
}
missing=()
for pkg in python3-torch python3-torchvision; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${missing[*]} (the PyTorch baseline, Debian packages)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
fi
"$repo/deploy/install-deps.sh" >&2
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
fi
log "building the benchmark targets in $BUILD_DIR"
cmake --build "$BUILD_DIR" --target selene-bench selene-data-bench selene-serving-bench \
  selene-load selene-server selene >&2
for dir in "$DATA/tiny-imagenet-200-10c" "$DATA/lunar-sample"; do
  [[ -d "$dir" ]] || { echo "bench: $dir not found (set SELENE_SHARED_DATA)" >&2; exit 2; }
done

server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap 'stop_server' EXIT

# ------------------------------------------------------------------ what and where
torch_version="$($PY -c 'import torch, torchvision; print("torch", torch.__version__, "+ torchvision", torchvision.__version__)')"
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
memory="$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
os="$(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
commands=(
  "BUILD_DIR=$(realpath --relative-to="$repo" "$BUILD_DIR") bench/run.sh   # everything below"
  "$PY bench/pytorch/bench.py params|flops|matmul --threads $THREADS"
  "$PY bench/pytorch/bench.py matmul --dtype bfloat16 --threads $THREADS   # the bf16 peak"
  "$BUILD_DIR/bin/selene-bench --model unet --mode train --batch 16 --steps $UNET_STEPS --threads $THREADS [--channels_last] --json"
  "$PY bench/pytorch/bench.py train --model unet --batch 16 --steps $UNET_STEPS --threads $THREADS"
  "$BUILD_DIR/bin/selene-bench --model unet --mode train --batch 16 --steps $FAST_UNET_STEPS --threads $THREADS --precision bf16 --channels_last --json"
  "$PY bench/pytorch/bench.py train --model unet --batch 16 --steps $FAST_UNET_STEPS --threads $THREADS --bf16 --channels-last"
  "(the same with --model classifier --batch 64 --steps $CLF_STEPS, fast $FAST_CLF_STEPS; $ROUNDS rounds, interleaved)"
  "$PY bench/pytorch/bench.py profile --model unet|classifier --batch 16|64 --threads $THREADS [--bf16 --channels-last]"
  "$BUILD_DIR/bin/selene-data-bench --data \$DATA/tiny-imagenet-200-10c --classes $CLASSES --size 128 --threads $THREADS --nocache_steps --json [--set training.channels_last=false | --set training.precision=bf16,training.channels_last=true]"
  "$PY bench/pytorch/bench.py epoch-classify --data \$DATA/tiny-imagenet-200-10c --classes $CLASSES --workers 2 --threads $THREADS [--bf16 --channels-last]"
  "$PY bench/pytorch/make_moon_pngs.py --sample \$DATA/lunar-sample --out \$WORK/moon --count $MOON_PAIRS"
  "$BUILD_DIR/bin/selene-data-bench --spec configs/unet_moon.json --data \$WORK/moon --size 128 --threads $THREADS --nocache_steps --json [--set training.channels_last=false | --set training.precision=bf16,training.channels_last=true]"
  "$PY bench/pytorch/bench.py epoch-segment --data \$WORK/moon --workers 2 --threads $THREADS [--bf16 --channels-last]"
  "$BUILD_DIR/bin/selene-server --max_batch_size 1|8 --state_dir \$WORK/state   # 4 synthetic U-Net jobs"
  "$BUILD_DIR/bin/selene-serving-bench --checkpoint \$WORK/state/jobs/job-1/best.pt --threads 1 --compare_unoptimized --bf16"
  "$PY bench/pytorch/bench.py infer --threads 1 --checkpoint \$WORK/state/jobs/job-1/best.pt [--bf16 --channels-last]"
  "$BUILD_DIR/bin/selene-load --model job-1 --concurrency 1|4|16 --seconds $LOAD_SECONDS"
  "$PY bench/pytorch/bench.py activations --model classifier --batch 64 --classes $CLASSES --threads $THREADS [--bf16 --channels-last]"
)
commands=("${commands[@]//$BUILD_DIR/$(realpath --relative-to="$repo" "$BUILD_DIR")}")
$PY - "$work/meta.json" "$date_tag" "$THREADS" "$cpu" "$(nproc)" "$memory" "$os" \
  "$torch_version" "${commands[@]}" <<'EOF'
import json, sys
out, date, threads, cpu, cores, memory, os_, torch_, *commands = sys.argv[1:]
json.dump({"date": date, "threads": int(threads), "commands": commands,
           "machine": {"cpu": cpu, "cores": int(cores), "memory": memory, "os": os_,
                       "torch": torch_}}, open(out, "w"))
EOF
log "work folder $work; $THREADS threads; $torch_version"

# ------------------------------------------------------------------ 1. training throughput
if want 1; then
log "1. training throughput: parameters, FLOPs, matmul peaks (float32, bfloat16)"
$PY bench/pytorch/bench.py params --classes 200 >"$work/params.json"
$PY bench/pytorch/bench.py flops --classes 200 >"$work/flops.json"
# The peaks: matmul_N.json float32 (the file names of earlier runs), matmul_bf16_N.json bfloat16.
matmul_peaks() {  # matmul_peaks N
  wait_quiet
  $PY bench/pytorch/bench.py matmul --threads "$THREADS" >"$work/matmul_$1.json"
  $PY bench/pytorch/bench.py matmul --dtype bfloat16 --threads "$THREADS" \
    >"$work/matmul_bf16_$1.json"
}
matmul_peaks 1
# Per round and model, five runs interleaved Selene / PyTorch: fp32 (train_M_selene_R.json,
# train_M_pytorch_R.json: the same kernels on both sides), Selene's default fp32 +
# channels-last (train_M_selene_default_R.json), then fast = bf16 autocast + channels-last
# (train_M_selene_fast_R.json, train_M_pytorch_fast_R.json).
for round in $(seq 1 "$ROUNDS"); do
  for model in unet classifier; do
    if [[ $model == unet ]]; then
      batch=16; steps=$UNET_STEPS; fast_steps=$FAST_UNET_STEPS
    else
      batch=64; steps=$CLF_STEPS; fast_steps=$FAST_CLF_STEPS
    fi
    wait_quiet
    log "1. $model training fp32, round $round/$ROUNDS"
    "$BIN/selene-bench" --model "$model" --mode train --batch "$batch" --steps "$steps" \
      --warmup 2 --threads "$THREADS" --json >"$work/train_${model}_selene_$round.json"
    $PY bench/pytorch/bench.py train --model "$model" --batch "$batch" --steps "$steps" \
      --warmup 2 --threads "$THREADS" >"$work/train_${model}_pytorch_$round.json"
    log "1. $model training fp32 + channels-last (Selene's default), round $round/$ROUNDS"
    "$BIN/selene-bench" --model "$model" --mode train --batch "$batch" --steps "$steps" \
      --warmup 2 --threads "$THREADS" --channels_last --json \
      >"$work/train_${model}_selene_default_$round.json"
    wait_quiet
    log "1. $model training bf16 + channels-last, round $round/$ROUNDS"
    "$BIN/selene-bench" --model "$model" --mode train --batch "$batch" --steps "$fast_steps" \
      --warmup 2 --threads "$THREADS" --precision bf16 --channels_last --json \
      >"$work/train_${model}_selene_fast_$round.json"
    $PY bench/pytorch/bench.py train --model "$model" --batch "$batch" --steps "$fast_steps" \
      --warmup 2 --threads "$THREADS" --bf16 --channels-last \
      >"$work/train_${model}_pytorch_fast_$round.json"
  done
done
matmul_peaks 2
for model in unet classifier; do
  if [[ $model == unet ]]; then batch=16; else batch=64; fi
  $PY bench/pytorch/bench.py profile --model "$model" --batch "$batch" --threads "$THREADS" \
    --steps 2 >"$work/profile_$model.json"
done
# The fast configuration's profiles too: where the bf16 time goes.
for model in unet classifier; do
  if [[ $model == unet ]]; then batch=16; else batch=64; fi
  $PY bench/pytorch/bench.py profile --model "$model" --batch "$batch" --threads "$THREADS" \
    --steps 2 --bf16 --channels-last >"$work/profile_${model}_fast.json"
done
$PY - "$work" <<'EOF'
import json, sys, glob
work = sys.argv[1]
params = json.load(open(f"{work}/params.json"))
for model in ("unet", "classifier"):
    selene = json.load(open(f"{work}/train_{model}_selene_1.json"))["parameters"]
    if selene != params[model]:
        sys.exit(f"bench: {model} has {selene} parameters in Selene, {params[model]} in PyTorch")
    print(f"bench: {model}: {selene:,} parameters in Selene and in PyTorch", file=sys.stderr)
EOF
fi

# ------------------------------------------------------------------ 2. one epoch from files
if want 2; then
# The fp32 rows are like for like: NCHW on both sides (a spec's default is channels-last).
fp32_set=(--set training.channels_last=false)
wait_quiet
log "2. epoch on the Tiny ImageNet sample ($CLASSES classes): Selene"
"$BIN/selene-data-bench" --data "$DATA/tiny-imagenet-200-10c" --classes "$CLASSES" --size 128 \
  --threads "$THREADS" --nocache_steps "${fp32_set[@]}" --json >"$work/epoch_cls_selene_1.json"
wait_quiet
log "2. epoch on the Tiny ImageNet sample: PyTorch DataLoader"
$PY bench/pytorch/bench.py epoch-classify --data "$DATA/tiny-imagenet-200-10c" \
  --classes "$CLASSES" --workers 2 --threads "$THREADS" >"$work/epoch_cls_pytorch_1.json"
# The fast configuration (bf16 autocast + channels-last) on both sides: *_fast_1.json.
fast_set=(--set training.precision=bf16,training.channels_last=true)
wait_quiet
log "2. epoch on the Tiny ImageNet sample, bf16 + channels-last: Selene"
"$BIN/selene-data-bench" --data "$DATA/tiny-imagenet-200-10c" --classes "$CLASSES" --size 128 \
  --threads "$THREADS" --nocache_steps "${fast_set[@]}" --json >"$work/epoch_cls_selene_fast_1.json"
wait_quiet
log "2. epoch on the Tiny ImageNet sample, bf16 + channels-last: PyTorch DataLoader"
$PY bench/pytorch/bench.py epoch-classify --data "$DATA/tiny-imagenet-200-10c" \
  --classes "$CLASSES" --workers 2 --threads "$THREADS" --bf16 --channels-last \
  >"$work/epoch_cls_pytorch_fast_1.json"
log "2. writing $MOON_PAIRS MOON-layout PNG pairs"
$PY bench/pytorch/make_moon_pngs.py --sample "$DATA/lunar-sample" --out "$work/moon" \
  --count "$MOON_PAIRS" >&2
for round in $(seq 1 $(( ROUNDS > 2 ? 2 : ROUNDS ))); do
  wait_quiet
  log "2. segmentation epoch from PNGs, round $round"
  "$BIN/selene-data-bench" --spec configs/unet_moon.json --data "$work/moon" --size 128 \
    --threads "$THREADS" --nocache_steps "${fp32_set[@]}" --json \
    >"$work/epoch_seg_selene_$round.json"
  $PY bench/pytorch/bench.py epoch-segment --data "$work/moon" --workers 2 --threads "$THREADS" \
    >"$work/epoch_seg_pytorch_$round.json"
done
wait_quiet
log "2. segmentation epoch from PNGs, bf16 + channels-last"
"$BIN/selene-data-bench" --spec configs/unet_moon.json --data "$work/moon" --size 128 \
  --threads "$THREADS" --nocache_steps "${fast_set[@]}" --json >"$work/epoch_seg_selene_fast_1.json"
$PY bench/pytorch/bench.py epoch-segment --data "$work/moon" --workers 2 --threads "$THREADS" \
  --bf16 --channels-last >"$work/epoch_seg_pytorch_fast_1.json"
fi

# ------------------------------------------------------------------ 3-4. serving and memory
if want 3; then
state="$work/state"
rm -rf "$state"  # a re-run (WORK=...) starts from an empty store: job-1 is its first job
mkdir -p "$state"
metrics_flag=()
if "$BIN/selene-server" --helpfull 2>&1 | grep -q -- "-metrics_listen"; then
  metrics_flag=(--metrics_listen 127.0.0.1:0)
fi
# A binary with REST would take port 8000; a free port instead (older ones lack the flag).
if "$BIN/selene-server" --helpfull 2>&1 | grep -q -- "-http_listen"; then
  metrics_flag+=(--http_listen 127.0.0.1:0)
fi
address=""
start_server() {  # start_server LOG ARGS... ; sets server_pid and address
  local server_log="$1"; shift
  "$BIN/selene-server" --listen 127.0.0.1:0 "${metrics_flag[@]}" --state_dir "$state" \
    --data_root "$DATA" "$@" >"$server_log" 2>&1 &
  server_pid=$!
  address=""
  for _ in $(seq 1 300); do
    address="$(sed -n 's/^selene-server listening on \(.*\) (state .*/\1/p' "$server_log" | head -n 1)"
    [[ -n "$address" ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: selene-server did not start:" >&2
  cat "$server_log" >&2
  exit 1
}
rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# peak_rss PID SECONDS_OR_WHILE_FILE: samples VmRSS every 0.2 s until the file disappears.
sample_peak() {  # sample_peak PID FLAG_FILE -> prints the peak MiB seen while FLAG_FILE exists
  local pid="$1" flag="$2" peak=0 now
  while [[ -e "$flag" ]] && kill -0 "$pid" 2>/dev/null; do
    now="$(rss_mib "$pid")"
    peak="$(awk -v a="$peak" -v b="$now" 'BEGIN {print (b > a) ? b : a}')"
    sleep 0.2
  done
  echo "$peak"
}
selene_cli() { "$BIN/selene" --server "$address" "$@"; }
job_spec="$work/bench_unet.json"
cat >"$job_spec" <<'EOF'
{"name": "bench-unet", "task": "binary_segmentation", "model": {"unet": {}},
 "data": {"kind": "synthetic_moon", "num_samples": 64, "image_size": 128},
 "training": {"epochs": 1, "batch_size": 16, "seed": 1}}
EOF
declare -A mem

log "3. selene-server, batching off (max_batch_size 1)"
start_server "$work/server_b1.log" --max_batch_size 1
sleep 2
mem[idle_mib]="$(rss_mib "$server_pid")"
touch "$work/sampling"
sample_peak "$server_pid" "$work/sampling" >"$work/peak_small" &
sampler=$!
jobs=()
for seed in 1 2 3 4; do
  jobs+=("$(selene_cli submit "$job_spec" --set "training.seed=$seed" --set "name=bench-unet-$seed")")
done
for job in "${jobs[@]}"; do
  selene_cli watch "$job" >"$work/watch_$job.log" 2>&1 ||
    { echo "bench: $job did not succeed:" >&2; tail -5 "$work/watch_$job.log" >&2; exit 1; }
done
rm "$work/sampling"; wait "$sampler"
mem[training_small_peak_mib]="$(cat "$work/peak_small")"
sleep 1
mem[after_training_mib]="$(rss_mib "$server_pid")"
log "3. trained ${jobs[*]}; in-process inference against PyTorch eager"
best="$state/jobs/job-1/best.pt"
for round in $(seq 1 $(( ROUNDS > 2 ? 2 : ROUNDS ))); do
  wait_quiet
  "$BIN/selene-serving-bench" --checkpoint "$best" --threads 1 --seconds "$SERVE_SECONDS" \
    --compare_unoptimized --bf16 --engine_clients "$([[ $round == 1 ]] && echo 1,4 || echo '')" \
    --dump "$work/dump" >"$work/serving_t1_$round.json"
  $PY bench/pytorch/bench.py infer --threads 1 --seconds "$SERVE_SECONDS" --checkpoint "$best" \
    >"$work/pytorch_infer_t1_$round.json"
  $PY bench/pytorch/bench.py infer --threads 1 --seconds "$SERVE_SECONDS" --checkpoint "$best" \
    --bf16 --channels-last >"$work/pytorch_infer_bf16_t1_$round.json"
done
wait_quiet
"$BIN/selene-serving-bench" --checkpoint "$best" --threads "$THREADS" \
  --seconds "$SERVE_SECONDS" --compare_unoptimized --bf16 --engine_clients "" \
  >"$work/serving_t${THREADS}_1.json"
$PY bench/pytorch/bench.py infer --threads "$THREADS" --seconds "$SERVE_SECONDS" \
  --checkpoint "$best" >"$work/pytorch_infer_t${THREADS}_1.json"
$PY bench/pytorch/bench.py infer --threads "$THREADS" --seconds "$SERVE_SECONDS" \
  --checkpoint "$best" --bf16 --channels-last >"$work/pytorch_infer_bf16_t${THREADS}_1.json"
$PY bench/pytorch/bench.py check --checkpoint "$best" --selene_json "$work/serving_t1_1.json" \
  >"$work/check.json"
grpc_runs() {  # grpc_runs MAX_BATCH
  "$BIN/selene-serving-bench" --checkpoint "$best" --threads 1 --seconds 4 --engine_clients "" \
    >"$work/grpc_b$1_reference.json"
  for c in 1 4 16; do
    log "3. Segment over gRPC, max_batch_size $1, concurrency $c"
    "$BIN/selene-load" --server "$address" --model job-1 --concurrency "$c" \
      --seconds "$LOAD_SECONDS" >"$work/grpc_b$1_c$c.json"
  done
}
grpc_runs 1
mem[one_model_mib]="$(rss_mib "$server_pid")"
for job in job-2 job-3 job-4; do
  "$BIN/selene-load" --server "$address" --model "$job" --concurrency 1 --seconds 0.5 \
    --warmup_calls 1 >/dev/null
done
sleep 1
mem[four_models_mib]="$(rss_mib "$server_pid")"

log "4. memory while training the classifier on the Tiny ImageNet sample"
touch "$work/sampling"
sample_peak "$server_pid" "$work/sampling" >"$work/peak_tiny" &
sampler=$!
tiny="$(selene_cli submit configs/classifier_tiny_imagenet.json \
  --set data.path=tiny-imagenet-200-10c --set data.num_classes=10 --set training.epochs=1 \
  --set training.schedule.warmup_epochs=0)"
sleep "$([[ $QUICK == 1 ]] && echo 10 || echo 25)"
selene_cli cancel "$tiny" >/dev/null || true
rm "$work/sampling"; wait "$sampler"
mem[tiny_imagenet_peak_mib]="$(cat "$work/peak_tiny")"
mem[tiny_imagenet_cache_mib]="$(du -sm "$state/cache" 2>/dev/null | cut -f1)"
stop_server
# Where the training memory goes (not a timing): the tensors one classifier step saves for
# backward at the job's batch, fp32 and fast (the server's job above ran fp32).
log "4. activation memory of one classifier training step (batch 64)"
$PY bench/pytorch/bench.py activations --model classifier --batch 64 --classes "$CLASSES" \
  --threads "$THREADS" >"$work/activations_classifier.json"
$PY bench/pytorch/bench.py activations --model classifier --batch 64 --classes "$CLASSES" \
  --threads "$THREADS" --bf16 --channels-last >"$work/activations_classifier_fast.json"

log "3. selene-server, batching on (max_batch_size 8, 5 ms)"
start_server "$work/server_b8.log" --max_batch_size 8 --max_queue_delay_ms 5
grpc_runs 8
stop_server

{
  printf '{'
  sep=""
  for key in "${!mem[@]}"; do printf '%s"%s": %s' "$sep" "$key" "${mem[$key]:-null}"; sep=", "; done
  printf '}\n'
} >"$work/memory.json"
fi

# ------------------------------------------------------------------ report
docs="$repo/docs/benchmarks.md"
complete=1
for f in train_unet_selene_1.json epoch_cls_selene_1.json grpc_b8_c16.json memory.json; do
  [[ -s "$work/$f" ]] || complete=0
done
if [[ $complete == 0 || "$QUICK" == 1 ]]; then
  # A partial or smoke run does not replace the full run's numbers in the docs.
  results="${results%.json}-partial.json"
  docs="-"
fi
log "report: $results${docs:+ and }$([[ $docs == - ]] || echo "$docs")"
$PY bench/report.py "$work" "$results" "$docs"
log "done in ${SECONDS}s (raw outputs in $work)"
