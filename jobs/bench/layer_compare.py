#!/usr/bin/python3
"""layer_compare.py - resnet50 / resnet18 inference layer by layer: shardnet against ONNX Runtime.

Runs, alternately in --rounds rounds (so that both see the same machine state),
  shardnet bench --arch ARCH --batch B   with SN_PROFILE=1 (per-layer ms per pass, stderr)
  ort_run.js --profile                   (ORT's own per-node profile)
and maps ORT's fused Conv nodes (named after their outputs: /layerL/layerL.Y/relu/...,
relu_1/..., conv3/..., downsample/...) to shardnet's torchvision layer names. Prints, per layer,
the minimum over rounds of each engine's median time, then sums by convolution algorithm.
The minimum over rounds is the least disturbed figure on a shared machine.

ORT's nodes include what it fused into them (the residual add and ReLU into the last conv of
a block; shardnet fuses the same), and profiling adds a few microseconds per node.

Usage: /usr/bin/python3 jobs/bench/layer_compare.py --shardnet build/shardnet
           [--arch resnet50] [--batch 1] [--rounds 3] [--reps 15] [--threads 2]
           [--workdir /tmp/shardnet_peers] [--top 25]
Needs jobs/bench/node_modules (see peers.py) and python3-torch for the ONNX export.
"""
import argparse
import collections
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peers  # noqa: E402  (export_onnx)


def ort_layer(name, bottleneck):
    """shardnet layer name of an ORT node name, or None."""
    if name.startswith('/relu/'):
        return 'conv1'
    if name.startswith('/maxpool/'):
        return 'maxpool'
    if name.startswith('/fc/'):
        return 'fc'
    if name.startswith('/avgpool/'):
        return 'avgpool'
    m = re.match(r'/layer(\d)/layer\d\.(\d+)/([^/]+)/', name)
    if not m:
        return None
    block = 'layer%s.%s.' % (m.group(1), m.group(2))
    part = m.group(3)
    if 'downsample' in part:
        return block + 'downsample.0'
    if part == 'relu':
        return block + 'conv1'
    if bottleneck and part == 'relu_1':
        return block + 'conv2'
    return block + ('conv3' if bottleneck else 'conv2')


def read_ort(path, bottleneck):
    ev = json.load(open(path))
    per = collections.defaultdict(list)
    for e in ev:
        if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
            per[e['name']].append(e['dur'] / 1000.0)
    out = collections.defaultdict(float)
    for name, d in per.items():
        key = ort_layer(name, bottleneck) or name
        out[key] += statistics.median(d)
    return out


def read_shardnet(text):
    out, algo = {}, {}
    for line in text.splitlines():
        p = line.split()
        if len(p) == 5 and p[4].endswith('%') and p[0] != 'layer':
            out[p[0]] = float(p[3])
            algo[p[0]] = p[2] if p[1] == 'conv' else p[1]
    return out, algo


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--shardnet', required=True)
    ap.add_argument('--arch', default='resnet50', choices=['resnet50', 'resnet18'])
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--reps', type=int, default=15)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--workdir', default='/tmp/shardnet_peers')
    ap.add_argument('--top', type=int, default=25)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    onnx = peers.export_onnx(a.arch, a.workdir)
    bottleneck = a.arch == 'resnet50'
    env = dict(os.environ, SN_PROFILE='1',
               OPENBLAS_CORETYPE=os.environ.get('OPENBLAS_CORETYPE', 'SkylakeX'))
    ours, orts, algo = [], [], {}
    tmp = tempfile.mkdtemp(prefix='layer_compare.')
    for r in range(a.rounds):
        p = subprocess.run([a.shardnet, 'bench', '--arch', a.arch, '--batch', str(a.batch),
                            '--threads', str(a.threads), '--reps', str(a.reps), '--min-time', '2'],
                           env=env, capture_output=True, text=True, check=True)
        t, algo = read_shardnet(p.stderr)
        ours.append(t)
        prefix = os.path.join(tmp, 'ort%d' % r)
        subprocess.run(['node', os.path.join(HERE, 'ort_run.js'), '--model', onnx, '--batch',
                        str(a.batch), '--threads', str(a.threads), '--reps', str(a.reps),
                        '--min-time', '2', '--profile', prefix], check=True, capture_output=True)
        orts.append(read_ort(sorted(glob.glob(prefix + '*.json'))[-1], bottleneck))
        print('round %d: shardnet %.1f ms per pass (sum of layers), ORT %.1f ms (sum of nodes)'
              % (r + 1, sum(t.values()), sum(orts[-1].values())), flush=True)
    rows = []
    for k in ours[0]:
        s = min(o.get(k, float('inf')) for o in ours)
        o = min(x.get(k, 0.0) for x in orts)
        rows.append((s - o, k, algo.get(k, '-'), s, o))
    rows.sort(reverse=True)
    print('\n%s batch %d, %d threads: minimum over %d rounds of each median (ms)'
          % (a.arch, a.batch, a.threads, a.rounds))
    print('%-24s %-12s %9s %9s %8s' % ('layer', 'algorithm', 'shardnet', 'ORT', 'diff'))
    for d, k, al, s, o in rows[:a.top]:
        print('%-24s %-12s %9.3f %9.3f %+8.3f' % (k, al, s, o, d))
    by = collections.defaultdict(lambda: [0.0, 0.0])
    for d, k, al, s, o in rows:
        key = ('last conv of block, ' + al) if k.endswith('conv3') or (
            not bottleneck and k.endswith('conv2')) else al
        by[key][0] += s
        by[key][1] += o
    print('\n%-32s %9s %9s' % ('by algorithm', 'shardnet', 'ORT'))
    for k, (s, o) in sorted(by.items()):
        print('%-32s %9.2f %9.2f' % (k, s, o))
    print('%-32s %9.2f %9.2f' % ('total', sum(r[3] for r in rows), sum(r[4] for r in rows)))


if __name__ == '__main__':
    main()
