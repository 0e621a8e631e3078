#!/usr/bin/python3
"""fmnist_peer.py - PyTorch training of shardnet's resnet20 on Fashion-MNIST with the recipe of
jobs/demo.sh, for a time-to-accuracy comparison with `shardnet train`.

Data: the HDF5 files `shardnet convert idx` writes (/images uint8 (N,28,28,1), /labels int32),
read whole with h5py. Model: train_peer.resnet20 (1 input channel, 10 classes; PyTorch's default
initialisation). Recipe as demo.sh / shardnet train's defaults:
  global batch 128; steps per epoch ceil(N / 128), the last batch filled by wrapping around the
  shuffled order (shardnet's default without --drop-last); reshuffled every epoch;
  SGD lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4 on every parameter;
  cosine schedule per step: lr(t) = 0.1 * (1 + cos(pi * t / T)) / 2, T = epochs x steps/epoch;
  augmentation: random horizontal flip (p 0.5), no crop (--augment flip);
  preprocessing: x / 255 (shardnet's "unit", the default of the small-image models);
  mean cross-entropy; model.train() for the steps, model.eval() (BN running statistics, torch
  momentum 0.1) on the whole test set after every epoch.

Prints one JSON line per epoch:
  {"epoch", "wall_s" (cumulative training + evaluation wall time from the first step),
   "train_s" (this epoch's training time), "train_loss", "train_acc", "val_loss", "val_acc",
   "img_per_s" (training images / train_s), "lr"}
and at the end {"time_to_acc": {"<target>": wall_s of the first epoch reaching it, or null},
"load_s": seconds to read the data and build the model (not in wall_s)}.

Usage: fmnist_peer.py --train fashion_train.h5 --test fashion_test.h5 [--epochs 6] [--threads 2]
                      [--batch 128] [--lr 0.1] [--seed 1] [--limit-rows N] [--target 0.92]
                      [--format contiguous|channels_last]
Run with /usr/bin/python3 (torch 1.13, h5py).
"""
import argparse
import json
import math
import os
import sys
import time

t_process = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--train', required=True)
    ap.add_argument('--test', required=True)
    ap.add_argument('--epochs', type=int, default=6)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--lr', type=float, default=0.1)
    ap.add_argument('--momentum', type=float, default=0.9)
    ap.add_argument('--weight-decay', type=float, default=5e-4)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--limit-rows', type=int, default=0, help='train on the first N rows only')
    ap.add_argument('--target', default='0.92', help='comma-separated test accuracies for time_to_acc')
    ap.add_argument('--format', default='contiguous', choices=('contiguous', 'channels_last'))
    ap.add_argument('--eval-batch', type=int, default=1000)
    args = ap.parse_args()

    import h5py
    import numpy as np
    import torch
    from train_peer import resnet20

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    def load(path, limit=0):
        with h5py.File(path, 'r') as f:
            n = f['images'].shape[0] if not limit else min(limit, f['images'].shape[0])
            x = np.asarray(f['images'][:n])
            y = np.asarray(f['labels'][:n])
        if x.ndim != 4 or x.shape[1:] != (28, 28, 1) or x.dtype != np.uint8:
            raise SystemExit('%s: /images is %s %s, expected uint8 (N,28,28,1)' % (path, x.dtype, x.shape))
        # NHWC uint8 -> NCHW float in [0, 1] (shardnet's "unit" preprocessing)
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
        return xt, torch.from_numpy(y.astype(np.int64)).reshape(-1)

    xtr, ytr = load(args.train, args.limit_rows)
    xte, yte = load(args.test)
    mf = torch.channels_last if args.format == 'channels_last' else torch.contiguous_format
    model = resnet20(num_classes=10, in_ch=1).to(memory_format=mf)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, nesterov=True,
                          weight_decay=args.weight_decay)
    lossf = torch.nn.CrossEntropyLoss()
    n, b = xtr.shape[0], args.batch
    steps = (n + b - 1) // b
    total = steps * args.epochs
    targets = [t.strip() for t in args.target.split(',')]
    reached = {t: None for t in targets}
    load_s = time.perf_counter() - t_process

    wall, step = 0.0, 0
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen)
        if steps * b > n:  # wrap around to fill the last batch
            perm = torch.cat([perm, perm[:steps * b - n]])
        sl, sc, cnt, lr = 0.0, 0, 0, args.lr
        for s in range(steps):
            idx = perm[s * b:(s + 1) * b]
            x = xtr.index_select(0, idx)
            flip = torch.rand(x.shape[0], generator=gen) < 0.5
            x[flip] = x[flip].flip(3)
            x = x.contiguous(memory_format=mf)
            y = ytr.index_select(0, idx)
            lr = args.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
            for g in opt.param_groups:
                g['lr'] = lr
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = lossf(out, y)
            loss.backward()
            opt.step()
            sl += loss.item() * x.shape[0]
            sc += int((out.argmax(1) == y).sum())
            cnt += x.shape[0]
            step += 1
        train_s = time.perf_counter() - t0
        model.eval()
        vl, vc = 0.0, 0
        with torch.no_grad():
            for i in range(0, xte.shape[0], args.eval_batch):
                x = xte[i:i + args.eval_batch].contiguous(memory_format=mf)
                y = yte[i:i + args.eval_batch]
                out = model(x)
                vl += float(torch.nn.functional.cross_entropy(out, y, reduction='sum'))
                vc += int((out.argmax(1) == y).sum())
        wall += time.perf_counter() - t0
        val_acc = vc / xte.shape[0]
        for t in targets:
            if reached[t] is None and val_acc >= float(t):
                reached[t] = round(wall, 2)
        print(json.dumps({'epoch': epoch + 1, 'wall_s': round(wall, 2), 'train_s': round(train_s, 2),
                          'train_loss': round(sl / cnt, 6), 'train_acc': round(sc / cnt, 6),
                          'val_loss': round(vl / xte.shape[0], 6), 'val_acc': round(val_acc, 6),
                          'img_per_s': round(cnt / train_s, 1), 'lr': round(lr, 6),
                          'threads': args.threads, 'framework': 'pytorch',
                          'version': torch.__version__}), flush=True)
    print(json.dumps({'time_to_acc': reached,
                      'load_s': round(load_s, 2), 'epochs': args.epochs, 'train_rows': n}), flush=True)


if __name__ == '__main__':
    main()
