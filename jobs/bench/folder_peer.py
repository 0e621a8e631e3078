#!/usr/bin/python3
"""folder_peer.py - what a user would write instead of `shardnet infer --data FOLDER`: torchvision
ImageFolder-style loading of a folder of JPEGs (PIL, Resize(256) + CenterCrop(224) + ToTensor +
Normalize, a bad file skipped with try/except), DataLoader(num_workers=2), resnet50 eval under
no_grad with random weights (speed does not depend on them).

Usage: folder_peer.py FOLDER MODE [OUT.h5] [--threads 2] [--batch 16]
  MODE top3      top-3 classes per image (kept in memory, as a script printing them would)
  MODE features  the pooled 2048-vector per image, written to OUT.h5 (/features, /filenames)
Prints one JSON line: {"mode", "images", "skipped", "seconds", "images_per_s"}; seconds is the
wall time from the start of the script (imports included) to the end of the output.
"""
import time

T0 = time.time()
import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402

EXTS = (".jpg", ".jpeg", ".png")


class Files(torch.utils.data.Dataset):
    def __init__(self, root):
        self.paths = sorted(
            os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.lower().endswith(EXTS))
        self.tf = transforms.Compose([
            transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            with Image.open(self.paths[i]) as im:
                return self.tf(im.convert("RGB")), i
        except Exception:  # a bad file: skipped
            return None, i


def collate(items):
    good = [(x, i) for x, i in items if x is not None]
    bad = [i for x, i in items if x is None]
    if not good:
        return None, [], bad
    return torch.stack([x for x, _ in good]), [i for _, i in good], bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("mode", choices=["top3", "features"])
    ap.add_argument("out", nargs="?")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ds = Files(a.folder)
    dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, num_workers=2, collate_fn=collate)
    model = torchvision.models.resnet50()
    if a.mode == "features":
        model.fc = torch.nn.Identity()
    model.eval()
    outs, rows, skipped = [], [], 0
    with torch.no_grad():
        for x, idx, bad in dl:
            skipped += len(bad)
            if x is None:
                continue
            y = model(x)
            outs.append(torch.topk(torch.softmax(y, 1), 3).indices.numpy() if a.mode == "top3"
                        else y.numpy())
            rows += idx
    if a.mode == "features":
        with h5py.File(a.out, "w") as f:
            f["features"] = np.concatenate(outs).astype(np.float32)
            f["filenames"] = np.array([os.path.relpath(ds.paths[i], a.folder) for i in rows],
                                      dtype=h5py.string_dtype())
    secs = time.time() - T0
    print(json.dumps({"mode": a.mode, "images": len(rows), "skipped": skipped,
                      "seconds": round(secs, 3), "images_per_s": round(len(rows) / secs, 2)}))


if __name__ == "__main__":
    main()
