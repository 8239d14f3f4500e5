#!/usr/bin/env bash
# Builds the Selene image from the repository's Dockerfile and proves it works, with podman and
# no Docker engine:
#
#   1. base     the debian:bookworm base image, if podman has none: debootstrap (minbase) into a
#               cached tarball, then `podman import` under the name the Dockerfile's FROM uses
#               (Docker Hub is unreachable from the development machines)
#   2. build    podman build --isolation chroot --format docker -t selene:check .
#   3. start    podman run -d (runc) and wait until `selene health` answers SERVING
#   4. health   the image's HEALTHCHECK (podman healthcheck run) reports healthy
#   5. user     the server runs as a non-root uid
#   6. train    from outside the container, with the host's CLI (build/bin/selene): submit the
#               demo U-Net spec cut to 2 epochs on 128 samples, watch it until it succeeds
#   7. segment  selene segment on tools/demo/moon_sample.png; the mask is a PNG
#   8. metrics  GET /metrics on the metrics port shows selene_jobs (promtool lints it if present)
#   9. rest     the Open Inference Protocol over REST: /v2/health/ready, then the same image as
#               base64 BYTES to POST /v2/models/JOB/infer; the answer holds its UINT8 mask
#
# Prints each phase's time and a summary; exits non-zero with the failing phase's message. The
# container (and its anonymous volumes) is removed on exit, also on failure or Ctrl-C, unless
# --keep is given.
#
#   deploy/image-check.sh [--no-build] [--keep]
#
#   --no-build   use the existing selene:check image (skip phases 1-2)
#   --keep       leave the container running at the end (its name is printed)
#
# Environment: SELENE_CLI (the host CLI; default build/bin/selene, built if missing),
# SELENE_IMAGE (default selene:check), DEBIAN_MIRROR (default http://deb.debian.org/debian),
# SELENE_IMAGE_CACHE (base tarball cache; default $XDG_CACHE_HOME/selene-image-check, else
# /var/tmp/selene-image-check), IMAGE_CHECK_JOBS (compile jobs in the build; default ninja's).
#
# Needs root (debootstrap, and rootful podman is what was tested), podman, runc, debootstrap
# and curl; installs the missing ones with apt-get. On a 2-core machine the build dominates:
# see docs/deployment.md for measured times.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

build_image=1
keep=0
for arg in "$@"; do
  case "$arg" in
    --no-build) build_image=0 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image-check: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

image="${SELENE_IMAGE:-selene:check}"
base_image="debian:bookworm"    # the Dockerfile's FROM
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if [[ -n "${SELENE_IMAGE_CACHE:-}" ]]; then
  cache="$SELENE_IMAGE_CACHE"
elif [[ -n "${XDG_CACHE_HOME:-}" ]]; then
  cache="$XDG_CACHE_HOME/selene-image-check"
else
  cache="/var/tmp/selene-image-check"
fi
selene="${SELENE_CLI:-$repo/build/bin/selene}"
container="selene-image-check-$$"
work="$(mktemp -d "${TMPDIR:-/tmp}/selene-image-check.XXXXXX")"

# ---- reporting ----

phase_names=()
phase_secs=()
phase=""
phase_start=0
start_all=$SECONDS

begin() {
  phase="$1"
  phase_start=$SECONDS
  echo
  echo "== image-check: $phase: $2"
}
end() {
  local took=$((SECONDS - phase_start))
  phase_names+=("$phase")
  phase_secs+=("$took")
  echo "== image-check: $phase done in ${took}s"
}
fail() {
  echo >&2
  echo "image-check: FAILED in phase '${phase:-setup}': $*" >&2
  exit 1
}
summary() {
  local i
  echo
  echo "image-check: phase times"
  for i in "${!phase_names[@]}"; do
    printf '  %-8s %5ss\n' "${phase_names[$i]}" "${phase_secs[$i]}"
  done
  printf '  %-8s %5ss\n' "total" "$((SECONDS - start_all))"
}

cleanup() {
  local status=$?
  if podman container exists "$container" 2>/dev/null; then
    if [[ $status -ne 0 ]]; then
      echo "image-check: last lines of the container's log:" >&2
      podman logs --tail 30 "$container" >&2 2>&1 || true
    fi
    if [[ $keep -eq 1 && $status -eq 0 ]]; then
      echo "image-check: --keep: container $container left running (podman rm -f -v $container)"
    else
      podman rm -f -v "$container" >/dev/null 2>&1 || true
    fi
  fi
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- prerequisites ----

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v curl >/dev/null || need+=(curl)
if [[ $build_image -eq 1 ]] && ! command -v debootstrap >/dev/null; then need+=(debootstrap); fi
if [[ ${#need[@]} -gt 0 ]]; then
  [[ $(id -u) -eq 0 ]] || fail "missing ${need[*]}; install them (apt-get install ${need[*]})"
  echo "image-check: installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" \
    || fail "apt-get install ${need[*]} failed"
fi

if [[ ! -x "$selene" ]]; then
  # The CLI runs on the host, outside the container: that is the point of the check.
  [[ -z "${SELENE_CLI:-}" ]] || fail "SELENE_CLI=$selene is not executable"
  begin cli "building the host CLI ($selene)"
  if [[ ! -f build/build.ninja ]]; then
    ./deploy/install-deps.sh
    cmake -S . -B build -G Ninja >/dev/null
  fi
  nice -n 5 cmake --build build --target selene || fail "could not build the host CLI"
  end
fi

# ---- 1-2: base image and build ----

if [[ $build_image -eq 1 ]]; then
  begin base "base image $base_image"
  if podman image exists "$base_image"; then
    echo "image-check: podman already has $base_image"
  else
    tarball="$cache/debian-bookworm-minbase.tar.gz"
    if [[ ! -s "$tarball" ]]; then
      [[ $(id -u) -eq 0 ]] || fail "debootstrap needs root"
      mkdir -p "$cache"
      rootfs="$cache/rootfs.$$"
      echo "image-check: debootstrap --variant=minbase bookworm from $mirror (about a minute)"
      debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || { tail -20 "$cache/debootstrap.log" >&2; rm -rf "$rootfs"; fail "debootstrap failed"; }
      # Updates and security too, as in Debian's own images: the runtime stage then gets the same
      # library versions as a host that keeps up to date.
      cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
      chroot "$rootfs" apt-get clean
      rm -rf "$rootfs"/var/lib/apt/lists/*
      tar --numeric-owner -C "$rootfs" -czf "$tarball.part" . && mv "$tarball.part" "$tarball"
      rm -rf "$rootfs"
    else
      echo "image-check: using the cached $tarball"
    fi
    # An imported tarball has no config: give it the PATH and CMD a Debian image has.
    podman import \
      --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD=["/bin/bash"]' "$tarball" "$base_image" >/dev/null \
      || fail "podman import of $tarball failed"
  fi
  end

  begin build "podman build -t $image (compiles Selene in the container: the long phase)"
  # chroot isolation: no Docker engine, and no nested user namespaces here. docker format: the
  # OCI format has no HEALTHCHECK and podman would drop it.
  nice -n 5 podman build --isolation chroot --format docker \
    ${IMAGE_CHECK_JOBS:+--build-arg JOBS=$IMAGE_CHECK_JOBS} -t "$image" . \
    || fail "podman build failed (output above)"
  end
else
  podman image exists "$image" || fail "--no-build but podman has no image $image"
fi
podman image inspect --format '{{.Size}}' "$image" \
  | awk '{printf "image-check: image size %.0f MB\n", $1 / 1e6}'

# ---- 3: start ----

begin start "podman run -d $image and wait for SERVING"
# Networking: rootful podman's default bridge (CNI, iptables NAT) with ports published on the
# loopback interface works here, so the check reaches the server exactly as a user of
# `podman run -p` / `docker run -p` would, from outside the container. Host ports are left to
# podman (`-p 127.0.0.1::PORT`) and read back with `podman port`, so a server already running on
# 50051 or 9464 (a developer's, the demo's) cannot collide. --runtime runc and the ulimits: the
# default crun and unlimited ulimits fail in this sandbox. No -v: podman creates anonymous
# volumes for the image's VOLUMEs with the image's ownership (uid 10001), and `rm -v` drops them.
# --health-interval=disable: no systemd here to run the periodic timer (podman still logs that
# it cannot reach systemd); phase 4 runs the check by hand.
podman run -d --name "$container" --runtime runc \
  --ulimit nofile=1024:1024 --ulimit nproc=1000:1000 \
  --health-interval=disable \
  -p 127.0.0.1::50051 -p 127.0.0.1::8000 -p 127.0.0.1::9464 \
  "$image" >"$work/run.out" 2>"$work/run.err" \
  || { cat "$work/run.err" >&2; fail "podman run failed"; }
grpc_address="$(podman port "$container" 50051/tcp | head -n 1)"
metrics_address="$(podman port "$container" 9464/tcp | head -n 1)"
rest_address="$(podman port "$container" 8000/tcp | head -n 1)"
[[ -n "$grpc_address" && -n "$metrics_address" && -n "$rest_address" ]] || fail "podman port shows no published ports"
export SELENE_SERVER="$grpc_address"
echo "image-check: container $container: gRPC on $grpc_address, metrics on $metrics_address"
served=0
for _ in $(seq 1 120); do
  if [[ "$(podman inspect --format '{{.State.Running}}' "$container")" != "true" ]]; then
    fail "the container exited: $(podman inspect --format '{{.State.Status}} (exit {{.State.ExitCode}})' "$container")"
  fi
  if "$selene" --timeout 2 health >"$work/health.out" 2>&1; then
    served=1
    break
  fi
  sleep 0.5
done
[[ $served -eq 1 ]] || { cat "$work/health.out" >&2; fail "no SERVING within 60 s"; }
echo "image-check: selene health: $(cat "$work/health.out")"
end

# ---- 4-5: healthcheck and user ----

begin health "the image's HEALTHCHECK"
[[ "$(podman inspect --format '{{.Config.Healthcheck}}' "$container")" != "<nil>" ]] \
  || fail "the container has no healthcheck (was the image built with --format docker?)"
podman healthcheck run "$container" || fail "podman healthcheck run: unhealthy"
health_status="$(podman inspect --format '{{.State.Health.Status}}' "$container")"
[[ "$health_status" == "healthy" ]] || fail "health status is '$health_status', not healthy"
echo "image-check: podman healthcheck: $health_status"
end

begin user "the server runs as non-root"
uid="$(podman exec "$container" id -u)" || fail "podman exec id -u failed"
[[ "$uid" =~ ^[0-9]+$ && "$uid" -ne 0 ]] || fail "the container runs as uid '$uid'"
server_uid="$(podman top "$container" user | awk 'NR == 2 {print $1}')"
echo "image-check: exec uid $uid ($(podman exec "$container" id -un)); selene-server's user: $server_uid"
[[ "$server_uid" != "root" ]] || fail "selene-server runs as root"
end

# ---- 6-7: train and segment from outside ----

begin train "submit a 2-epoch demo U-Net job and watch it"
job="$("$selene" submit configs/demo_moon_unet.json \
  --set training.epochs=2 --set data.num_samples=128)" \
  || fail "selene submit failed: $job"
echo "image-check: submitted $job"
timeout 900 "$selene" watch "$job" </dev/null || fail "selene watch $job did not end in success"
"$selene" get "$job" || true
end

begin segment "selene segment --model $job tools/demo/moon_sample.png"
"$selene" segment --model "$job" tools/demo/moon_sample.png --out "$work/masks" \
  || fail "selene segment failed"
mask="$work/masks/moon_sample_mask.png"
[[ -s "$mask" ]] || fail "no mask written ($mask)"
[[ "$(head -c 8 "$mask" | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]] \
  || fail "$mask is not a PNG"
echo "image-check: mask $(stat -c %s "$mask") bytes"
end

# ---- 8: metrics ----

begin metrics "GET http://$metrics_address/metrics"
metrics_note="metrics not checked"
if podman image inspect --format '{{json .Config.Entrypoint}}' "$image" | grep -q metrics_listen; then
  curl -fsS --max-time 10 "http://$metrics_address/metrics" >"$work/metrics.txt" \
    || fail "could not scrape http://$metrics_address/metrics"
  grep -q '^selene_jobs' "$work/metrics.txt" || fail "no selene_jobs in the metrics"
  metrics_note="exports selene_jobs"
  echo "image-check: $(grep -c '^[a-z]' "$work/metrics.txt") samples; selene_jobs:"
  grep '^selene_jobs[{ ]' "$work/metrics.txt" | sed 's/^/  /'
  if command -v promtool >/dev/null; then
    # A lint note (naming, help text) is reported, not fatal: the format is the server's tests' job.
    if promtool check metrics <"$work/metrics.txt" >"$work/promtool.txt" 2>&1; then
      echo "image-check: promtool check metrics: ok"
    else
      echo "image-check: promtool check metrics reports:"; sed 's/^/  /' "$work/promtool.txt"
    fi
  fi
else
  echo "image-check: the image's entrypoint has no --metrics_listen; metrics not checked"
fi
end

# ---- 9: rest ----

begin rest "POST http://$rest_address/v2/models/$job/infer"
curl -fsS --max-time 10 "http://$rest_address/v2/health/ready" >"$work/ready.json" \
  || fail "GET /v2/health/ready failed"
grep -q '"ready":true' "$work/ready.json" || fail "not ready: $(cat "$work/ready.json")"
printf '{"inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [1],
  "parameters": {"content_type": "base64"}, "data": ["%s"]}]}' \
  "$(base64 -w0 tools/demo/moon_sample.png)" >"$work/infer.json"
curl -fsS --max-time 60 -H 'content-type: application/json' --data-binary @"$work/infer.json" \
  "http://$rest_address/v2/models/$job/infer" >"$work/inferred.json" \
  || fail "POST /v2/models/$job/infer failed"
grep -q '"name":"mask","datatype":"UINT8"' "$work/inferred.json" \
  || fail "no UINT8 mask in the answer: $(head -c 300 "$work/inferred.json")"
echo "image-check: REST answered $(stat -c %s "$work/inferred.json") bytes of JSON with the mask"
end

summary
echo "image-check: OK: $image serves as uid $uid, reports healthy, trains $job, segments, $metrics_note, answers REST v2"
