// ort_run.js - times one ONNX model with ONNX Runtime (CPU) for jobs/bench/peers.py.
// Usage: node ort_run.js --model FILE --batch B [--threads 2] [--reps 20] [--min-time 10]
//        [--size 224] [--spin 0|1] [--profile PREFIX]
// --spin 0 stops idle intra-op threads from spinning (ORT's default is 1); on a loaded machine
// spinning threads starve the ones they wait for, as OMP_WAIT_POLICY=active does for shardnet.
// --profile writes ORT's own per-node profile (JSON, PREFIX_<date>.json) of the timed runs
// (layer_compare.py reads it); profiling adds a little time per node.
// Prints one JSON line: median / min milliseconds per batch and images per second.
'use strict';
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const a = {threads: 2, reps: 20, minTime: 10, size: 224, spin: 1, profile: null};
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i], v = argv[i + 1];
    if (k === '--model') a.model = v;
    else if (k === '--batch') a.batch = parseInt(v, 10);
    else if (k === '--threads') a.threads = parseInt(v, 10);
    else if (k === '--reps') a.reps = parseInt(v, 10);
    else if (k === '--min-time') a.minTime = parseFloat(v);
    else if (k === '--size') a.size = parseInt(v, 10);
    else if (k === '--spin') a.spin = parseInt(v, 10);
    else if (k === '--profile') a.profile = v;
    else throw new Error('unknown argument ' + k);
  }
  if (!a.model || !a.batch) throw new Error('need --model and --batch');
  return a;
}

async function main() {
  const a = parseArgs(process.argv);
  const sess = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: {session: {intra_op: {allow_spinning: a.spin ? '1' : '0'}}},
    ...(a.profile ? {enableProfiling: true, profileFilePrefix: a.profile} : {}),
  });
  const n = a.batch * 3 * a.size * a.size;
  const data = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = (s / 4294967296) * 2 - 1;
  }
  const feeds = {[sess.inputNames[0]]: new ort.Tensor('float32', data, [a.batch, 3, a.size, a.size])};
  for (let w = 0; w < 3; w++) await sess.run(feeds);
  const times = [];
  const start = process.hrtime.bigint();
  while (times.length < a.reps || (times.length < 3 * a.reps &&
         Number(process.hrtime.bigint() - start) / 1e9 < a.minTime)) {
    const t0 = process.hrtime.bigint();
    await sess.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (times.length >= 3 && Number(process.hrtime.bigint() - start) / 1e9 > 6 * a.minTime) break;
  }
  if (a.profile) sess.endProfiling();
  times.sort((x, y) => x - y);
  const med = times[Math.floor(times.length / 2)];
  console.log(JSON.stringify({
    framework: 'onnxruntime', version: ort.env.versions.common, batch: a.batch, threads: a.threads,
    spin: a.spin,
    runs: times.length, ms_per_batch: +med.toFixed(3), ms_min: +times[0].toFixed(3),
    img_per_s: +(a.batch * 1000 / med).toFixed(2),
  }));
}

main().catch((e) => {
  console.error('ort_run.js: ' + e.message);
  process.exit(1);
});
