#!/usr/bin/python3
"""Proves Selene's Open Inference Protocol (KServe v2) gRPC service with a client no one here
wrote: Debian's grpcio and protobuf, and stubs that protoc and grpc_python_plugin generate from
proto/inference/grpc_predict_v2.proto at run time. Checks live, ready, server and model metadata;
that ModelInfer's mask, from raw UINT8 pixels and from PNG bytes, equals selene.v1 Segment's at
the same "threshold" parameter and its top-k strings and probabilities equal Classify's;
NOT_FOUND, INVALID_ARGUMENT and UNIMPLEMENTED where they belong; and that calls without the
bearer token are refused.

Usage: kserve_grpc_client.py --grpc HOST:PORT --segmenter ID --classifier ID --token TOKEN
                             --expected DIR
DIR holds what tests/server/api/open_inference_clients_test.cc wrote: image.png, image.rgb (the
same pixels, raw RGB rows), mask.bin (Segment's mask as class ids, a byte a pixel) and
expected.json ({"width", "height", "threshold" (the mask's, as text), "classes",
"topk": [{"label", "index", "probability"}]}).
Exits 1 naming the first mismatch.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import grpc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SERVICE = "/inference.GRPCInferenceService/"


def fail(message):
    sys.exit(f"kserve_grpc_client.py: FAIL: {message}")


def check(condition, message):
    if not condition:
        fail(message)
    print(f"ok: {message}")


def generate_stubs(out_dir):
    """protoc's Python messages and grpc_python_plugin's stubs for the repository's proto."""
    plugin = shutil.which("grpc_python_plugin")
    if plugin is None:
        fail("grpc_python_plugin is not on PATH (Debian package protobuf-compiler-grpc)")
    subprocess.run(["protoc", f"-I{REPO}/proto", f"--python_out={out_dir}",
                    f"--grpc_out={out_dir}", f"--plugin=protoc-gen-grpc={plugin}",
                    "inference/grpc_predict_v2.proto"], check=True)
    sys.path.insert(0, out_dir)
    from inference import grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc
    return grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc


def expect_code(code, what, call, request, metadata, contains=None):
    try:
        call(request, metadata=metadata, timeout=60)
    except grpc.RpcError as error:
        if error.code() != code:
            fail(f"{what}: expected {code.name}, got {error.code().name}: {error.details()}")
        if contains is not None and contains not in error.details():
            fail(f"{what}: message {error.details()!r} does not name {contains!r}")
        print(f"ok: {what}: {code.name}: {error.details()}")
        return
    fail(f"{what}: expected {code.name}, the call succeeded")


def bytes_elements(buffer):
    """A BYTES tensor's raw contents: each element a 4-byte little-endian length, then bytes."""
    elements, at = [], 0
    while at < len(buffer):
        (size,) = struct.unpack_from("<I", buffer, at)
        elements.append(buffer[at + 4:at + 4 + size])
        at += 4 + size
    return elements


def main():
    parser = argparse.ArgumentParser()
    for flag in ("--grpc", "--segmenter", "--classifier", "--token", "--expected"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    with open(os.path.join(args.expected, "expected.json")) as f:
        expected = json.load(f)
    width, height = expected["width"], expected["height"]
    png = open(os.path.join(args.expected, "image.png"), "rb").read()
    rgb = open(os.path.join(args.expected, "image.rgb"), "rb").read()
    mask = open(os.path.join(args.expected, "mask.bin"), "rb").read()

    with tempfile.TemporaryDirectory(prefix="kserve-python-stubs-") as stubs:
        pb, pb_grpc = generate_stubs(stubs)  # imported: the files can go
    channel = grpc.insecure_channel(args.grpc, options=[("grpc.enable_http_proxy", 0)])
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    auth = [("authorization", f"Bearer {args.token}")]

    check(stub.ServerLive(pb.ServerLiveRequest(), metadata=auth, timeout=60).live, "server live")
    check(stub.ServerReady(pb.ServerReadyRequest(), metadata=auth, timeout=60).ready,
          "server ready")
    server = stub.ServerMetadata(pb.ServerMetadataRequest(), metadata=auth, timeout=60)
    check(server.name and len(server.extensions) > 0,
          f"server metadata: {server.name} {server.version}, extensions {list(server.extensions)}")
    for model in (args.segmenter, args.classifier):
        ready = stub.ModelReady(pb.ModelReadyRequest(name=model), metadata=auth, timeout=60)
        check(ready.ready, f"model {model} ready")

    # Model metadata: the documented tensors, batch and image sides of variable size (-1).
    def tensors(metadata_list):
        return {t.name: (t.datatype, list(t.shape)) for t in metadata_list}

    seg = stub.ModelMetadata(pb.ModelMetadataRequest(name=args.segmenter), metadata=auth,
                             timeout=60)
    inputs, outputs = tensors(seg.inputs), tensors(seg.outputs)
    check(seg.name == args.segmenter, f"segmenter metadata names it: {seg.name}")
    check(inputs.get("image", ("", []))[0] == "UINT8" and inputs["image"][1][:3] == [-1] * 3
          and len(inputs["image"][1]) == 4, f"segmenter input image UINT8 [-1,-1,-1,C]: {inputs}")
    check(inputs.get("image_bytes", ("", []))[0] == "BYTES" and inputs["image_bytes"][1][0] == -1,
          f"segmenter input image_bytes BYTES [-1]: {inputs}")
    check(outputs.get("mask") == ("UINT8", [-1, -1, -1]),
          f"segmenter output mask UINT8 [-1,-1,-1]: {outputs}")
    cls = stub.ModelMetadata(pb.ModelMetadataRequest(name=args.classifier), metadata=auth,
                             timeout=60)
    outputs = tensors(cls.outputs)
    check(outputs.get("probabilities") == ("FP32", [-1, expected["classes"]]),
          f"classifier output probabilities FP32 [-1,{expected['classes']}]: {outputs}")

    def image_request(model, outputs, datatype="UINT8", contents=rgb):
        request = pb.ModelInferRequest(model_name=model, id="python-client")
        request.inputs.add(name="image", datatype=datatype, shape=[1, height, width, 3])
        request.raw_input_contents.append(contents)
        for output in outputs:
            request.outputs.append(output)
        return request

    def expect_mask(request, what):
        request.parameters["threshold"].string_param = expected["threshold"]  # Segment's
        response = stub.ModelInfer(request, metadata=auth, timeout=60)
        out = response.outputs[0]
        check(response.id == "python-client", f"{what}: id echoed")
        check((out.name, out.datatype, list(out.shape)) == ("mask", "UINT8", [1, height, width]),
              f"{what}: mask UINT8 [1,{height},{width}]: {out.name} {out.datatype} {out.shape}")
        got = response.raw_output_contents[0]
        differ = sum(a != b for a, b in zip(got, mask)) + abs(len(got) - len(mask))
        check(differ == 0, f"{what}: mask equals Segment's ({differ} of {len(mask)} pixels differ)")

    mask_output = pb.ModelInferRequest.InferRequestedOutputTensor(name="mask")
    expect_mask(image_request(args.segmenter, [mask_output]), "ModelInfer image UINT8")
    request = pb.ModelInferRequest(model_name=args.segmenter, id="python-client")
    request.inputs.add(name="image_bytes", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(struct.pack("<I", len(png)) + png)
    expect_mask(request, "ModelInfer image_bytes PNG")

    # Classification: top-k strings "value:index:label", best first, as Classify answered.
    topk = expected["topk"]
    top = pb.ModelInferRequest.InferRequestedOutputTensor(name="probabilities")
    top.parameters["classification"].int64_param = len(topk)
    response = stub.ModelInfer(image_request(args.classifier, [top]), metadata=auth, timeout=60)
    out = response.outputs[0]
    check((out.datatype, list(out.shape)) == ("BYTES", [1, len(topk)]),
          f"classification BYTES [1,{len(topk)}]: {out.datatype} {out.shape}")
    labels = [e.decode() for e in bytes_elements(response.raw_output_contents[0])]
    for got, want in zip(labels, topk):
        value, index, label = got.split(":", 2)
        check(int(index) == want["index"] and label == want["label"]
              and abs(float(value) - want["probability"]) < 1e-5,
              f"top-k {got!r} is Classify's {want}")
    check(len(labels) == len(topk), f"{len(labels)} top-k strings")
    plain = pb.ModelInferRequest.InferRequestedOutputTensor(name="probabilities")
    response = stub.ModelInfer(image_request(args.classifier, [plain]), metadata=auth, timeout=60)
    raw = response.raw_output_contents[0]
    probabilities = struct.unpack(f"<{len(raw) // 4}f", raw)
    check(len(probabilities) == expected["classes"], f"{len(probabilities)} probabilities")
    for want in topk:
        check(abs(probabilities[want["index"]] - want["probability"]) < 1e-5,
              f"probability of {want['label']}: {probabilities[want['index']]}")

    # Errors where they belong.
    expect_code(grpc.StatusCode.NOT_FOUND, "unknown model", stub.ModelInfer,
                image_request("no-such-model", [mask_output]), auth, contains="no-such-model")
    fp32 = struct.pack(f"<{height * width * 3}f", *([0.5] * (height * width * 3)))
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, "FP32 image", stub.ModelInfer,
                image_request(args.segmenter, [mask_output], "FP32", fp32), auth,
                contains="image")
    repository_index = channel.unary_unary(SERVICE + "RepositoryIndex")  # Triton's, undeclared
    expect_code(grpc.StatusCode.UNIMPLEMENTED, "RepositoryIndex", repository_index, b"", auth)
    expect_code(grpc.StatusCode.UNAUTHENTICATED, "ModelInfer without a token", stub.ModelInfer,
                image_request(args.segmenter, [mask_output]), [])
    expect_code(grpc.StatusCode.UNAUTHENTICATED, "ModelMetadata with a wrong token",
                stub.ModelMetadata, pb.ModelMetadataRequest(name=args.segmenter),
                [("authorization", "Bearer wrong-" + args.token)])
    print("kserve_grpc_client.py: all checks passed")


if __name__ == "__main__":
    main()
