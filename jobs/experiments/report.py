#!/usr/bin/python3
"""report.py KIND OUT RUN... - tables and plots of the experiment scripts from their metrics.

degradation OUT ARCH...: OUT/metrics-<arch>.jsonl (one line per epoch, `shardnet train
    --metrics`) -> OUT/degradation.md (final and best errors per network, epoch by epoch) and
    OUT/degradation.png in the style of He et al. 2015, Fig. 6: training error (thin) and test
    error (bold) against epochs, plain networks on the left, ResNets on the right.
batchnorm OUT RUN...: OUT/metrics-<run>.jsonl with one line per evaluation (`--val-every`) ->
    OUT/batchnorm.md (steps to reach accuracy levels, final accuracy) and OUT/batchnorm.png in
    the style of Ioffe and Szegedy 2015, Fig. 1(a): test accuracy against training steps.
The plots are drawn by gnuplot (jobs/setup.sh installs gnuplot-nox); without it only the tables
are written.
"""
import json
import os
import shutil
import subprocess
import sys


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def gnuplot(script, out_png):
    if not shutil.which("gnuplot"):
        print("report.py: gnuplot not found, no %s" % out_png, file=sys.stderr)
        return
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def degradation(out, archs):
    runs = {a: load(os.path.join(out, "metrics-%s.jsonl" % a)) for a in archs}
    times = {}
    tp = os.path.join(out, "times.txt")
    if os.path.exists(tp):
        for line in open(tp):
            a, s = line.split()
            times[a] = int(s)
    md = ["| network | epochs | final training error | final test error | best test error | "
          "minutes |", "|---|---|---|---|---|---|"]
    for a, rows in runs.items():
        last = rows[-1]
        best = min(1 - r["val_acc"] for r in rows)
        md.append("| %s | %d | %.2f%% | %.2f%% | %.2f%% | %s |" % (
            a, last["epoch"], 100 * (1 - last["train_acc"]), 100 * (1 - last["val_acc"]),
            100 * best, "%.1f" % (times[a] / 60) if a in times else "-"))
    md.append("")
    md.append("Error after each epoch (training / test, %):")
    md.append("")
    md.append("| epoch | " + " | ".join(archs) + " |")
    md.append("|---" * (len(archs) + 1) + "|")
    for e in range(max(len(r) for r in runs.values())):
        cells = []
        for a in archs:
            r = runs[a][e] if e < len(runs[a]) else None
            cells.append("%.2f / %.2f" % (100 * (1 - r["train_acc"]), 100 * (1 - r["val_acc"]))
                         if r else "-")
        md.append("| %d | %s |" % (e + 1, " | ".join(cells)))
    with open(os.path.join(out, "degradation.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    for a, rows in runs.items():
        with open(os.path.join(out, "%s.dat" % a), "w") as f:
            for r in rows:
                f.write("%d %.4f %.4f\n" % (r["epoch"], 100 * (1 - r["train_acc"]),
                                            100 * (1 - r["val_acc"])))
    png = os.path.join(out, "degradation.png")
    panels = [("plain networks", [a for a in archs if a.startswith("plain")]),
              ("ResNets", [a for a in archs if a.startswith("resnet")])]
    colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"]
    script = ['set terminal pngcairo size 1100,450 noenhanced font ",11"',
              'set output "%s"' % png, "set multiplot layout 1,2",
              'set xlabel "epoch"', 'set ylabel "error (%)"', "set grid", "set key top right"]
    ymax = max(100 * (1 - min(r["train_acc"], r["val_acc"])) for rows in runs.values()
               for r in rows[1:] or rows)
    script.append("set yrange [0:%d]" % (int(ymax) + 2))
    for title, names in panels:
        script.append('set title "%s on Fashion-MNIST (dashed: training, bold: test)"' % title)
        plots = []
        for i, a in enumerate(names):
            dat = os.path.join(out, "%s.dat" % a)
            c = colors[i % len(colors)]
            plots.append('"%s" using 1:2 with lines lw 1 dt 2 lc rgb "%s" notitle' % (dat, c))
            plots.append('"%s" using 1:3 with lines lw 3 lc rgb "%s" title "%s"' % (dat, c, a))
        script.append("plot " + ", ".join(plots) if plots else "plot 0 notitle")
    script.append("unset multiplot")
    gnuplot("\n".join(script) + "\n", png)


def batchnorm(out, runs_names):
    runs = {n: load(os.path.join(out, "metrics-%s.jsonl" % n)) for n in runs_names}
    levels = [0.80, 0.85, 0.88, 0.90]
    md = ["| run | " + " | ".join("steps to %.0f%%" % (100 * l) for l in levels) +
          " | final test accuracy | best test accuracy |",
          "|---" * (len(levels) + 3) + "|"]
    for n, rows in runs.items():
        cells = []
        for l in levels:
            hit = next((r["step"] for r in rows if r.get("val_acc", 0) >= l), None)
            cells.append(str(hit) if hit is not None else "never")
        accs = [r["val_acc"] for r in rows if "val_acc" in r]
        md.append("| %s | %s | %.2f%% | %.2f%% |" % (n, " | ".join(cells), 100 * accs[-1],
                                                     100 * max(accs)))
    with open(os.path.join(out, "batchnorm.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    for n, rows in runs.items():
        with open(os.path.join(out, "%s.dat" % n), "w") as f:
            for r in rows:
                if "val_acc" in r:
                    f.write("%d %.4f\n" % (r["step"], 100 * r["val_acc"]))
    png = os.path.join(out, "batchnorm.png")
    script = ['set terminal pngcairo size 800,500 noenhanced font ",11"',
              'set output "%s"' % png, 'set xlabel "training steps"',
              'set ylabel "test accuracy (%)"', "set grid", "set key bottom right",
              'set title "LeNet with and without batch normalization, Fashion-MNIST"']
    plots = []
    for n in runs_names:
        dt = 1 if "bn" in n.split("-")[0] else 2
        plots.append('"%s" using 1:2 with lines lw 2 dt %d title "%s"' % (
            os.path.join(out, "%s.dat" % n), dt, n))
    script.append("plot " + ", ".join(plots))
    gnuplot("\n".join(script) + "\n", png)


if __name__ == "__main__":
    kind, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    {"degradation": degradation, "batchnorm": batchnorm}[kind](out, names)
