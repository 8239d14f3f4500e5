#!/usr/bin/env node
// Proves Selene's Open Inference Protocol (KServe v2) gRPC service with a client no one here
// wrote: npm's @grpc/grpc-js, with @grpc/proto-loader reading proto/inference/grpc_predict_v2.proto
// at run time (install-deps installs both into node_modules here, from package-lock.json).
// Checks live, ready, server and model metadata; that ModelInfer's mask, from raw UINT8 pixels and
// from PNG bytes, equals selene.v1 Segment's at the same "threshold" parameter and its top-k
// strings and probabilities equal Classify's; NOT_FOUND, INVALID_ARGUMENT and UNIMPLEMENTED
// where they belong; and that calls without the bearer token are refused.
//
// Usage: node kserve_grpc_client.js --grpc HOST:PORT --segmenter ID --classifier ID
//                                   --token TOKEN --expected DIR
// DIR: what tests/server/api/open_inference_clients_test.cc wrote (see kserve_grpc_client.py).
// Exits 1 naming the first mismatch.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const REPO = path.resolve(__dirname, '..', '..', '..');
const SERVICE = '/inference.GRPCInferenceService/';

function fail(message) {
  console.error(`kserve_grpc_client.js: FAIL: ${message}`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  console.log(`ok: ${message}`);
}

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i + 1 < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const name of ['grpc', 'segmenter', 'classifier', 'token', 'expected']) {
    if (!args[name]) fail(`missing --${name}`);
  }
  return args;
}

// A unary call as a promise of [error, response].
function call(client, method, request, metadata) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + 60000);
    client[method](request, metadata, {deadline}, (error, response) => resolve([error, response]));
  });
}

const name = (code) => Object.keys(grpc.status).find((key) => grpc.status[key] === code);

async function expectCode(code, what, promise, contains) {
  const [error] = await promise;
  if (!error) fail(`${what}: expected ${name(code)}, the call succeeded`);
  if (error.code !== code) {
    fail(`${what}: expected ${name(code)}, got ${name(error.code)}: ${error.details}`);
  }
  if (contains && !error.details.includes(contains)) {
    fail(`${what}: message ${JSON.stringify(error.details)} does not name ${contains}`);
  }
  console.log(`ok: ${what}: ${name(code)}: ${error.details}`);
}

// A BYTES tensor's raw contents: each element a 4-byte little-endian length, then the bytes.
function bytesElements(buffer) {
  const elements = [];
  for (let at = 0; at < buffer.length;) {
    const size = buffer.readUInt32LE(at);
    elements.push(buffer.subarray(at + 4, at + 4 + size));
    at += 4 + size;
  }
  return elements;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const read = (name) => fs.readFileSync(path.join(args.expected, name));
  const expected = JSON.parse(read('expected.json'));
  const [width, height] = [expected.width, expected.height];
  const [png, rgb, mask] = [read('image.png'), read('image.rgb'), read('mask.bin')];

  const definition = protoLoader.loadSync('inference/grpc_predict_v2.proto', {
    includeDirs: [path.join(REPO, 'proto')], keepCase: true, longs: Number, enums: String,
    defaults: true, oneofs: true,
  });
  const inference = grpc.loadPackageDefinition(definition).inference;
  const client = new inference.GRPCInferenceService(
      args.grpc, grpc.credentials.createInsecure(), {'grpc.enable_http_proxy': 0});
  const auth = new grpc.Metadata();
  auth.set('authorization', `Bearer ${args.token}`);
  const ok = async (method, request, metadata = auth) => {
    const [error, response] = await call(client, method, request, metadata);
    if (error) fail(`${method}: ${name(error.code)}: ${error.details}`);
    return response;
  };

  check((await ok('ServerLive', {})).live, 'server live');
  check((await ok('ServerReady', {})).ready, 'server ready');
  const server = await ok('ServerMetadata', {});
  check(server.name && server.extensions.length > 0,
      `server metadata: ${server.name} ${server.version}, extensions ${server.extensions}`);
  for (const model of [args.segmenter, args.classifier]) {
    check((await ok('ModelReady', {name: model})).ready, `model ${model} ready`);
  }

  // Model metadata: the documented tensors, batch and image sides of variable size (-1).
  const tensors = (list) =>
      Object.fromEntries(list.map((t) => [t.name, `${t.datatype} [${t.shape}]`]));
  const seg = await ok('ModelMetadata', {name: args.segmenter});
  const [inputs, outputs] = [tensors(seg.inputs), tensors(seg.outputs)];
  check(seg.name === args.segmenter, `segmenter metadata names it: ${seg.name}`);
  check(/^UINT8 \[-1,-1,-1,\d+\]$/.test(inputs.image || ''),
      `segmenter input image UINT8 [-1,-1,-1,C]: ${JSON.stringify(inputs)}`);
  check(/^BYTES \[-1(,1)?\]$/.test(inputs.image_bytes || ''),
      `segmenter input image_bytes BYTES [-1]: ${JSON.stringify(inputs)}`);
  check(outputs.mask === 'UINT8 [-1,-1,-1]',
      `segmenter output mask UINT8 [-1,-1,-1]: ${JSON.stringify(outputs)}`);
  const cls = tensors((await ok('ModelMetadata', {name: args.classifier})).outputs);
  check(cls.probabilities === `FP32 [-1,${expected.classes}]`,
      `classifier output probabilities FP32 [-1,${expected.classes}]: ${JSON.stringify(cls)}`);

  const imageRequest = (model, outputs, datatype = 'UINT8', contents = rgb) => ({
    model_name: model, id: 'node-client', outputs, raw_input_contents: [contents],
    inputs: [{name: 'image', datatype, shape: [1, height, width, 3]}],
  });
  const expectMask = async (request, what) => {
    request.parameters = {threshold: {string_param: expected.threshold}};  // Segment's
    const response = await ok('ModelInfer', request);
    const out = response.outputs[0];
    check(response.id === 'node-client', `${what}: id echoed`);
    check(`${out.name} ${out.datatype} [${out.shape}]` === `mask UINT8 [1,${height},${width}]`,
        `${what}: mask UINT8 [1,${height},${width}]: ${out.name} ${out.datatype} [${out.shape}]`);
    const got = response.raw_output_contents[0];
    let differ = Math.abs(got.length - mask.length);
    for (let i = 0; i < Math.min(got.length, mask.length); ++i) differ += got[i] !== mask[i];
    check(differ === 0,
        `${what}: mask equals Segment's (${differ} of ${mask.length} pixels differ)`);
  };

  const maskOutput = {name: 'mask'};
  await expectMask(imageRequest(args.segmenter, [maskOutput]), 'ModelInfer image UINT8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(png.length);
  await expectMask({
    model_name: args.segmenter, id: 'node-client',
    raw_input_contents: [Buffer.concat([length, png])],
    inputs: [{name: 'image_bytes', datatype: 'BYTES', shape: [1]}],
  }, 'ModelInfer image_bytes PNG');

  // Classification: top-k strings "value:index:label", best first, as Classify answered.
  const topk = expected.topk;
  const top = {name: 'probabilities', parameters: {classification: {int64_param: topk.length}}};
  let response = await ok('ModelInfer', imageRequest(args.classifier, [top]));
  const out = response.outputs[0];
  check(`${out.datatype} [${out.shape}]` === `BYTES [1,${topk.length}]`,
      `classification BYTES [1,${topk.length}]: ${out.datatype} [${out.shape}]`);
  const labels = bytesElements(response.raw_output_contents[0]).map((e) => e.toString());
  check(labels.length === topk.length, `${labels.length} top-k strings`);
  labels.forEach((got, i) => {
    const [value, index, ...label] = got.split(':');
    const want = topk[i];
    check(Number(index) === want.index && label.join(':') === want.label &&
          Math.abs(Number(value) - want.probability) < 1e-5,
        `top-k ${got} is Classify's ${JSON.stringify(want)}`);
  });
  response = await ok('ModelInfer', imageRequest(args.classifier, [{name: 'probabilities'}]));
  const raw = response.raw_output_contents[0];
  check(raw.length === 4 * expected.classes, `${raw.length / 4} probabilities`);
  for (const want of topk) {
    const probability = raw.readFloatLE(4 * want.index);
    check(Math.abs(probability - want.probability) < 1e-5,
        `probability of ${want.label}: ${probability}`);
  }

  // Errors where they belong.
  await expectCode(grpc.status.NOT_FOUND, 'unknown model',
      call(client, 'ModelInfer', imageRequest('no-such-model', [maskOutput]), auth),
      'no-such-model');
  const fp32 = Buffer.alloc(4 * height * width * 3);
  for (let i = 0; i < height * width * 3; ++i) fp32.writeFloatLE(0.5, 4 * i);
  await expectCode(grpc.status.INVALID_ARGUMENT, 'FP32 image',
      call(client, 'ModelInfer', imageRequest(args.segmenter, [maskOutput], 'FP32', fp32), auth),
      'image');
  // Triton's RepositoryIndex, which the proto does not declare, as a raw call with an empty body.
  const identity = (x) => x;
  await expectCode(grpc.status.UNIMPLEMENTED, 'RepositoryIndex', new Promise((resolve) => {
    client.makeUnaryRequest(SERVICE + 'RepositoryIndex', identity, identity, Buffer.alloc(0), auth,
        {deadline: new Date(Date.now() + 60000)}, (error, reply) => resolve([error, reply]));
  }));
  await expectCode(grpc.status.UNAUTHENTICATED, 'ModelInfer without a token',
      call(client, 'ModelInfer', imageRequest(args.segmenter, [maskOutput]), new grpc.Metadata()));
  const wrong = new grpc.Metadata();
  wrong.set('authorization', `Bearer wrong-${args.token}`);
  await expectCode(grpc.status.UNAUTHENTICATED, 'ModelMetadata with a wrong token',
      call(client, 'ModelMetadata', {name: args.segmenter}, wrong));
  client.close();
  console.log('kserve_grpc_client.js: all checks passed');
}

main().catch((error) => fail(error.stack || error));
