#!/usr/bin/env bash
# Proves Selene's Open Inference Protocol (KServe v2) REST routes with curl, a client no one here
# wrote (replies parsed by /usr/bin/python3's json). Checks health without a token, server and
# model metadata, model ready; that /infer's mask from UINT8 pixels equals selene.v1 Segment's at
# the same "threshold" parameter and its top-k strings and probabilities equal Classify's; 404
# for an unknown model and an unknown path, 400 naming the input for a wrong datatype, 401
# without the bearer token; errors as {"error": "..."}.
#
# Usage: kserve_rest.sh --http HOST:PORT --segmenter ID --classifier ID --token TOKEN --expected DIR
# DIR: what tests/server/api/open_inference_clients_test.cc wrote (see
# tests/clients/python/kserve_grpc_client.py). Exits 1 naming the first mismatch.
set -euo pipefail

fail() { echo "kserve_rest.sh: FAIL: $*" >&2; exit 1; }
while [ $# -ge 2 ]; do
  case "$1" in
    --http) HTTP=$2 ;; --segmenter) SEG=$2 ;; --classifier) CLS=$2 ;;
    --token) TOKEN=$2 ;; --expected) EXPECTED=$2 ;; *) fail "unknown argument $1" ;;
  esac
  shift 2
done
for name in HTTP SEG CLS TOKEN EXPECTED; do [ -n "${!name:-}" ] || fail "missing $name"; done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
BODY="$WORK/body"

# request METHOD PATH [TOKEN] [JSON_FILE]: the reply's body in $BODY, its status in $STATUS.
request() {
  local args=(-sS --noproxy '*' --max-time 60 -o "$BODY" -w '%{http_code}' -X "$1")
  if [ -n "${3:-}" ]; then args+=(-H "Authorization: Bearer $3"); fi
  if [ -n "${4:-}" ]; then args+=(-H 'Content-Type: application/json' --data-binary "@$4"); fi
  STATUS=$(curl "${args[@]}" "http://$HTTP$2") || fail "curl $1 http://$HTTP$2 failed"
}

expect_status() {  # WANT WHAT
  [ "$STATUS" = "$1" ] || fail "$2: HTTP $STATUS, expected $1: $(head -c 500 "$BODY")"
  echo "ok: $2: HTTP $STATUS"
}

# json_check WHAT EXPRESSION: a Python expression over the reply j holds; e is expected.json,
# flat() flattens nested lists, mask_ok(data) compares with the expected mask and topk_ok(data)
# with the expected top-k strings.
json_check() {
  /usr/bin/python3 - "$BODY" "$EXPECTED" "$1" "$2" <<'EOF'
import json, sys
body, expected_dir, what, expression = sys.argv[1:]
j = json.load(open(body))
e = json.load(open(expected_dir + "/expected.json"))
flat = lambda x: [z for y in x for z in flat(y)] if isinstance(x, list) else [x]
def mask_ok(data):
    got, m = flat(data), list(open(expected_dir + "/mask.bin", "rb").read())
    differ = sum(a != b for a, b in zip(got, m)) + abs(len(got) - len(m))
    print(f"{what}: {differ} of {len(m)} pixels differ", file=sys.stderr if differ else sys.stdout)
    return differ == 0
def topk_ok(data):
    parsed = [s.split(":", 2) for s in flat(data)]
    return len(parsed) == len(e["topk"]) and all(
        int(i) == w["index"] and l == w["label"] and abs(float(v) - w["probability"]) < 1e-5
        for (v, i, l), w in zip(parsed, e["topk"]))
if not eval("(" + expression + "\n)"):
    reply = json.dumps(j)[:300]
    sys.exit(f"kserve_rest.sh: FAIL: {what}: {expression.strip()} is false for {reply}")
print(f"ok: {what}")
EOF
}

# The request bodies: the image as a UINT8 tensor, as FP32 (wrong), and the outputs asked for;
# an empty object.
/usr/bin/python3 - "$EXPECTED" "$WORK" <<'EOF'
import json, sys
expected_dir, work = sys.argv[1:]
e = json.load(open(expected_dir + "/expected.json"))
pixels = list(open(expected_dir + "/image.rgb", "rb").read())
def write(name, datatype, data, outputs):
    image = {"name": "image", "shape": [1, e["height"], e["width"], 3], "datatype": datatype,
             "data": data}
    request = {"id": "curl-client", "inputs": [image], "outputs": outputs}
    if outputs[0]["name"] == "mask":
        request["parameters"] = {"threshold": float(e["threshold"])}  # Segment's, a JSON number
    json.dump(request, open(f"{work}/{name}.json", "w"))
write("mask", "UINT8", pixels, [{"name": "mask"}])
write("topk", "UINT8", pixels,
      [{"name": "probabilities", "parameters": {"classification": len(e["topk"])}}])
write("probabilities", "UINT8", pixels, [{"name": "probabilities"}])
write("fp32", "FP32", [p / 255 for p in pixels], [{"name": "mask"}])
open(f"{work}/empty.json", "w").write("{}")
EOF

request GET /v2/health/live && expect_status 200 "live, without a token"
request GET /v2/health/ready && expect_status 200 "ready, without a token"
request GET /v2 "$TOKEN" && expect_status 200 "server metadata"
json_check "server metadata: name and extensions" 'j["name"] and len(j["extensions"]) > 0'
for model in "$SEG" "$CLS"; do
  request GET "/v2/models/$model/ready" "$TOKEN" && expect_status 200 "model $model ready"
done
request GET "/v2/models/$SEG" "$TOKEN" && expect_status 200 "segmenter metadata"
json_check "segmenter metadata: image UINT8 [-1,-1,-1,C], mask UINT8 [-1,-1,-1]" '
  j["name"] == "'"$SEG"'" and
  any(t["name"] == "image" and t["datatype"] == "UINT8" and t["shape"][:3] == [-1, -1, -1]
      for t in j["inputs"]) and
  any(t["name"] == "mask" and t["datatype"] == "UINT8" and t["shape"] == [-1, -1, -1]
      for t in j["outputs"])'
request GET "/v2/models/$CLS" "$TOKEN" && expect_status 200 "classifier metadata"
json_check "classifier metadata: probabilities FP32 [-1,K]" '
  any(t["name"] == "probabilities" and t["datatype"] == "FP32" and t["shape"] == [-1, e["classes"]]
      for t in j["outputs"])'

request POST "/v2/models/$SEG/infer" "$TOKEN" "$WORK/mask.json" && expect_status 200 "infer mask"
json_check "mask UINT8 [1,H,W] equals Segment's" '
  j["id"] == "curl-client" and j["outputs"][0]["name"] == "mask" and
  j["outputs"][0]["datatype"] == "UINT8" and
  j["outputs"][0]["shape"] == [1, e["height"], e["width"]] and mask_ok(j["outputs"][0]["data"])'
request POST "/v2/models/$CLS/infer" "$TOKEN" "$WORK/topk.json" && expect_status 200 "infer top-k"
json_check "top-k strings equal Classify's" '
  j["outputs"][0]["datatype"] == "BYTES" and j["outputs"][0]["shape"] == [1, len(e["topk"])] and
  topk_ok(j["outputs"][0]["data"])'
request POST "/v2/models/$CLS/infer" "$TOKEN" "$WORK/probabilities.json"
expect_status 200 "infer probabilities"
json_check "probabilities FP32 [1,K] equal Classify's" '
  j["outputs"][0]["shape"] == [1, e["classes"]] and
  all(abs(flat(j["outputs"][0]["data"])[w["index"]] - w["probability"]) < 1e-5 for w in e["topk"])'

request POST /v2/models/no-such-model/infer "$TOKEN" "$WORK/mask.json"
expect_status 404 "unknown model"
json_check "unknown model: error names it" '"no-such-model" in j["error"]'
request POST "/v2/models/$SEG/infer" "$TOKEN" "$WORK/fp32.json" && expect_status 400 "FP32 image"
json_check "FP32 image: error names the input" '"image" in j["error"]'
request POST /v2/repository/index "$TOKEN" "$WORK/empty.json"
expect_status 404 "Triton's repository index, not served"
request GET "/v2/models/$SEG" && expect_status 401 "model metadata without a token"
json_check "without a token: an error" 'j["error"]'
request POST "/v2/models/$SEG/infer" "" "$WORK/mask.json"
expect_status 401 "infer without a token"
request POST "/v2/models/$SEG/infer" "wrong-$TOKEN" "$WORK/mask.json"
expect_status 401 "infer with a wrong token"
echo "kserve_rest.sh: all checks passed"
