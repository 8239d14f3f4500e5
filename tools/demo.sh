#!/usr/bin/env bash
# The demo (`make demo`): trains the demo U-Net on synthetic lunar terrain with the local
# runner and prints where its artifacts are. Until the server exists it runs selene-train
# directly; no download is needed.
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

selene_train="$build_dir/bin/selene-train"
if [[ ! -x "$selene_train" ]]; then
  echo "demo: $selene_train not found; build first (make build BUILD_DIR=...)" >&2
  exit 2
fi

out="runs/demo-moon-unet"
"$selene_train" --spec configs/demo_moon_unet.json --out "$out"

echo
echo "demo: done. Artifacts in $repo/$out:"
for name in best.pt last.pt history.csv metrics.json spec.json data_summary.json \
    run_summary.json report.md curves.png samples.png; do
  if [[ -e "$out/$name" ]]; then echo "  $out/$name"; fi
done
echo "demo: the model is $out/best.pt; read $out/report.md (curves and sample masks beside it)."
