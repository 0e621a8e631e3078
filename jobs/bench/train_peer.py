#!/usr/bin/python3
"""train_peer.py - PyTorch training throughput on the models shardnet trains, printed as JSON
lines in the format of train_bench.c so train_bench.sh can print ratios.

  resnet20   CIFAR-style (3x3 stem 16 ch, 3 stages of 3 BasicBlocks 16/32/64, option-B 1x1
             conv + BN downsample shortcuts, global average pool, fc), as shardnet's resnet20;
             input 28x28x1 (Fashion-MNIST), 10 classes.
  resnet50   torchvision 0.14 resnet50 at 224x224x3, 1000 classes.

One step = forward, cross-entropy, backward, SGD (momentum 0.9, weight decay 5e-4) update, on
random data, model in train() mode. torch.set_num_threads(T). Both memory formats (NCHW
contiguous and channels_last) are timed and the faster is reported ("format").
img_per_s = batch / median step time after warm-up steps; cpu_ms_per_step = median process CPU
time of a step (all threads).

Usage: train_peer.py [--models resnet20,resnet50] [--batch resnet20=128,resnet50=16]
                     [--threads 2] [--warmup 3] [--reps 10] [--min-time 10]
                     [--formats contiguous,channels_last]
Run with /usr/bin/python3 (torch 1.13).
"""
import argparse
import json
import os
import statistics
import time


def resnet20(num_classes=10, in_ch=1):
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or cin != planes:
                self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False),
                                                nn.BatchNorm2d(planes))

        def forward(self, x):
            sc = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return self.relu(y + sc)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(in_ch, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU(inplace=True)
            layers, cin = [], 16
            for s, planes in enumerate((16, 32, 64)):
                blocks = []
                for i in range(3):
                    blocks.append(Block(cin, planes, 2 if (s > 0 and i == 0) else 1))
                    cin = planes
                layers.append(nn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = layers
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(64, num_classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(self.pool(x).flatten(1))

    return Net()


def build(name):
    import torchvision
    if name == "resnet20":
        return resnet20(), (1, 28, 28), 10
    if name == "resnet50":
        return torchvision.models.resnet50(), (3, 224, 224), 1000
    raise SystemExit("unknown model " + name)


def bench(name, batch, fmt, args):
    import torch
    torch.manual_seed(0)
    model, shape, classes = build(name)
    model.train()
    x = torch.rand((batch,) + shape) * 2 - 1
    y = torch.arange(batch) % classes
    if fmt == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    lossf = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    ts, cs, start = [], [], time.perf_counter()
    while len(ts) < args.reps or (len(ts) < 3 * args.reps + 3 and
                                  time.perf_counter() - start < args.min_time):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step()
        cs.append(time.process_time() - c0)
        ts.append(time.perf_counter() - t0)
        if len(ts) >= 3 and time.perf_counter() - start > 6 * args.min_time:
            break
    med = statistics.median(ts)
    return {"framework": "torch", "version": torch.__version__, "mode": "train", "model": name,
            "input": "x".join(str(v) for v in (shape[1], shape[2], shape[0])), "batch": batch,
            "threads": args.threads, "img_per_s": round(batch / med, 2),
            "ms_per_step": round(med * 1e3, 3), "ms_min": round(min(ts) * 1e3, 3),
            "cpu_ms_per_step": round(statistics.median(cs) * 1e3, 3), "runs": len(ts), "loss": round(loss, 4), "format": fmt,
            "load_avg_1min": os.getloadavg()[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet20,resnet50")
    ap.add_argument("--batch", default="resnet20=128,resnet50=16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--min-time", type=float, default=10.0)
    ap.add_argument("--formats", default="contiguous,channels_last")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    batches = dict(kv.split("=") for kv in args.batch.split(","))
    for name in args.models.split(","):
        best = None
        for fmt in args.formats.split(","):
            r = bench(name, int(batches.get(name, 16)), fmt, args)
            if best is None or r["img_per_s"] > best["img_per_s"]:
                best = r
        print(json.dumps(best), flush=True)


if __name__ == "__main__":
    main()
