#!/usr/bin/python3
"""peers.py - inference throughput of the peer engines on the models shardnet runs, printed as
JSON lines so that `shardnet bench` can be compared side by side.

  PyTorch (eager, oneDNN): torch.set_num_threads(T), eval(), no_grad(); NCHW contiguous and
      channels_last are both timed and the better is reported ("format").
  ONNX Runtime (CPU, node binding, all graph optimisations): the same modules exported with
      torch.onnx.export (opset 13, dynamic batch), timed by ort_run.js.

Models (random weights; speed does not depend on them):
  resnet18, resnet50       torchvision 0.14 (v1.5: stride on the 3x3)
  keras_resnet50v2         a PyTorch module with the shapes and operations of Keras ResNet50V2
                           (docs/models.md, "Keras ResNet V2": pre-activation, stride on the last block's 3x3,
                           1x1 max-pool shortcut, biases on conv1/_0/_3 convs only).

Setup for ORT: cd jobs/bench && ONNXRUNTIME_NODE_INSTALL=skip npm install   (node_modules is not
committed). Run with /usr/bin/python3 (torch 1.13).

Usage: peers.py [--models resnet18,resnet50,keras_resnet50v2] [--batches 1,8,32]
                [--frameworks torch,ort] [--threads 2] [--reps 10] [--min-time 10]
                [--workdir /tmp/shardnet_peers] [--ort-spin 1]
                [--formats contiguous,channels_last] [--precision fp32|int8]
On a loaded machine spinning idle threads starve the workers: compare with `shardnet bench`
run with OMP_WAIT_POLICY=passive, using --ort-spin 0 and OMP_WAIT_POLICY=passive for PyTorch (measured at load 12, ORT resnet18 batch 1: 5.3 img/s spinning, 9.5 without).
Each line: {"framework", "version", "model", "batch", "threads", "img_per_s" (median),
            "ms_per_batch" (median), "ms_min", "runs", ["format"]}.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def keras_resnet50v2():
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, f, stride, conv_shortcut):
            super().__init__()
            self.preact_bn = nn.BatchNorm2d(cin, eps=1.001e-5)
            self.conv0 = nn.Conv2d(cin, 4 * f, 1, stride, bias=True) if conv_shortcut else None
            self.pool = nn.MaxPool2d(1, stride) if (not conv_shortcut and stride > 1) else None
            self.conv1 = nn.Conv2d(cin, f, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(f, eps=1.001e-5)
            self.conv2 = nn.Conv2d(f, f, 3, stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(f, eps=1.001e-5)
            self.conv3 = nn.Conv2d(f, 4 * f, 1, 1, bias=True)

        def forward(self, x):
            pre = torch.relu(self.preact_bn(x))
            if self.conv0 is not None:
                sc = self.conv0(pre)
            elif self.pool is not None:
                sc = self.pool(x)
            else:
                sc = x
            h = torch.relu(self.bn1(self.conv1(pre)))
            h = torch.relu(self.bn2(self.conv2(h)))
            return sc + self.conv3(h)

    class ResNet50V2(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=True)
            self.pool_pad = nn.ZeroPad2d(1)
            self.pool = nn.MaxPool2d(3, 2)
            blocks, cin = [], 64
            for f, n, s in ((64, 3, 2), (128, 4, 2), (256, 6, 2), (512, 3, 1)):
                for b in range(n):
                    stride = s if b == n - 1 else 1
                    blocks.append(Block(cin, f, stride, b == 0))
                    cin = 4 * f
            self.blocks = nn.Sequential(*blocks)
            self.post_bn = nn.BatchNorm2d(2048, eps=1.001e-5)
            self.fc = nn.Linear(2048, 1000)

        def forward(self, x):
            x = self.pool(self.pool_pad(self.conv1(x)))
            x = torch.relu(self.post_bn(self.blocks(x)))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return ResNet50V2()


def make_model(name):
    import torchvision
    if name == 'resnet18':
        m = torchvision.models.resnet18()
    elif name == 'resnet50':
        m = torchvision.models.resnet50()
    elif name == 'keras_resnet50v2':
        m = keras_resnet50v2()
    else:
        raise SystemExit('peers.py: unknown model ' + name)
    return m.eval()


def time_runs(fn, reps, min_time):
    for _ in range(3):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < reps or (len(times) < 3 * reps and time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 3 and time.perf_counter() - start > 6 * min_time:
            break
    return statistics.median(times), min(times), len(times)


def quantize_int8(model, x):
    """PyTorch's own int8 path: FX post-training static quantization (torch.ao.quantization) with
    the onednn backend's default qconfig (x86: per-channel s8 weights, u8 activations), calibrated
    on x (the benchmark's input, as `shardnet bench --precision int8` calibrates on its own)."""
    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = 'onednn'
    qm = get_default_qconfig_mapping('onednn')
    m = prepare_fx(model, qm, example_inputs=(x,))
    with torch.no_grad():
        m(x)
    return convert_fx(m)


def bench_torch(name, batch, args):
    import torch
    torch.set_num_threads(args.threads)
    model = make_model(name)
    x = torch.randn(batch, 3, 224, 224)
    if args.precision == 'int8':
        model = quantize_int8(model, x)
    best = None
    with torch.no_grad():
        for fmt in args.formats.split(','):
            mf = fmt == 'channels_last'
            m = model.to(memory_format=torch.channels_last) if mf else model
            xi = x.contiguous(memory_format=torch.channels_last) if mf else x.contiguous()
            med, mn, runs = time_runs(lambda: m(xi), args.reps, args.min_time)
            rec = {'framework': 'pytorch', 'version': torch.__version__, 'model': name,
                   'batch': batch, 'threads': args.threads, 'format': fmt,
                   'precision': args.precision,
                   'img_per_s': round(batch / med, 2), 'ms_per_batch': round(med * 1e3, 3),
                   'ms_min': round(mn * 1e3, 3), 'runs': runs}
            if args.verbose:
                print(json.dumps(dict(rec, note='candidate')), file=sys.stderr)
            if best is None or rec['img_per_s'] > best['img_per_s']:
                best = rec
    return best


def export_onnx(name, workdir):
    import torch
    path = os.path.join(workdir, name + '.onnx')
    if not os.path.exists(path):
        model = make_model(name)
        x = torch.randn(1, 3, 224, 224)
        torch.onnx.export(model, x, path, opset_version=13, input_names=['input'],
                          output_names=['logits'], dynamic_axes={'input': {0: 'batch'},
                                                                 'logits': {0: 'batch'}})
    return path


def bench_ort(name, batch, args):
    path = export_onnx(name, args.workdir)
    cmd = ['node', os.path.join(HERE, 'ort_run.js'), '--model', path, '--batch', str(batch),
           '--threads', str(args.threads), '--reps', str(args.reps), '--min-time',
           str(args.min_time), '--spin', str(args.ort_spin)]
    out = subprocess.run(cmd, cwd=HERE, check=True, capture_output=True, text=True).stdout
    rec = json.loads(out.strip().splitlines()[-1])
    rec['model'] = name
    return rec


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', default='resnet18,resnet50,keras_resnet50v2')
    p.add_argument('--batches', default='1,8,32')
    p.add_argument('--frameworks', default='torch,ort')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--reps', type=int, default=10)
    p.add_argument('--min-time', type=float, default=10.0)
    p.add_argument('--workdir', default='/tmp/shardnet_peers')
    p.add_argument('--ort-spin', type=int, default=1, help='ORT intra-op spinning (its default 1)')
    p.add_argument('--formats', default='contiguous,channels_last',
                   help='PyTorch memory formats to time (the faster is reported)')
    p.add_argument('--precision', default='fp32', choices=('fp32', 'int8'),
                   help='int8: PyTorch FX static quantization, onednn backend (torch only)')
    p.add_argument('--verbose', action='store_true')
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    for fw in args.frameworks.split(','):
        if fw == 'ort' and not os.path.isdir(os.path.join(HERE, 'node_modules', 'onnxruntime-node')):
            raise SystemExit('peers.py: run `cd %s && ONNXRUNTIME_NODE_INSTALL=skip npm install` '
                             'first' % HERE)
        for name in args.models.split(','):
            for b in (int(s) for s in args.batches.split(',')):
                rec = bench_torch(name, b, args) if fw == 'torch' else bench_ort(name, b, args)
                rec['load_avg_1min'] = round(os.getloadavg()[0], 2)
                print(json.dumps(rec), flush=True)


if __name__ == '__main__':
    main()
