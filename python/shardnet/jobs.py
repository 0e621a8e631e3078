"""Running the distributed shardnet program from Python, for pipeline steps (Snakemake, Airflow,
notebooks): `shardnet infer` and `shardnet train` under mpirun in a subprocess, returning the
output path and the metrics.

    r = shardnet.jobs.infer("val.h5", "preds.h5", arch="resnet50", weights="resnet50.h5",
                            ranks=4, threads=8, logits=True)
    r.out, r.metrics[0]["images_per_s"]

Keyword options become the command's options as they are (top_k=0 -> --top-k 0, logits=True ->
--logits, False or None: left out), so every option of docs/cli.md is available, today's and
later ones. The program is the one this package was built or installed with (SHARDNET_PROGRAM
overrides it); ranks > 1 runs it under `mpirun -np ranks` (launcher= replaces "mpirun", e.g.
["mpirun", "--hostfile", "hosts"] or, with ranks=None, a complete prefix such as
["srun", "-n", "8"]). A failed run raises JobError with the program's error line and exit status.
"""
import json
import os
import shlex
import subprocess
import tempfile
import time

from . import _lib
from .errors import JobError


class JobResult:
    """A finished run: out (absolute path of the output file), metrics (the --metrics JSON lines
    this run wrote, as dicts: one for infer, one per epoch for train), command, returncode,
    stdout, stderr, seconds."""

    def __init__(self, out, metrics, command, returncode, stdout, stderr, seconds):
        self.out, self.metrics, self.command = out, metrics, command
        self.returncode, self.stdout, self.stderr, self.seconds = returncode, stdout, stderr, seconds

    def __repr__(self):
        return "<shardnet.jobs.JobResult out=%s metrics=%d line(s) in %.1f s>" % (
            self.out, len(self.metrics), self.seconds)


def program():
    """The shardnet program run by the helpers."""
    return os.environ.get("SHARDNET_PROGRAM") or _lib.package_path("PROGRAM")


def options(**opts):
    """Command-line options from keyword arguments: name_x=v -> ["--name-x", "v"]; True -> the
    flag alone; False and None -> nothing."""
    args = []
    for k, v in opts.items():
        if v is None or v is False:
            continue
        args.append("--" + k.replace("_", "-"))
        if v is not True:
            args.append(os.fspath(v) if isinstance(v, os.PathLike) else str(v))
    return args


def run(command, ranks=1, launcher=None, env=None, timeout=None, out=None, **opts):
    """Runs `shardnet COMMAND [--out OUT] --opts...` and returns a JobResult. A --metrics file is
    added when none is given (then removed); with one given, only the lines this run appends are
    read."""
    given = opts.get("metrics")
    tmpdir = None
    if given is None:
        tmpdir = tempfile.mkdtemp(prefix="shardnet-metrics-")
        opts["metrics"] = os.path.join(tmpdir, "metrics.jsonl")
    mpath = os.fspath(opts["metrics"])
    start = os.path.getsize(mpath) if os.path.exists(mpath) else 0
    if ranks is not None and int(ranks) > 1:
        prefix = list(launcher or ["mpirun"]) + ["-np", str(int(ranks))]
    else:
        prefix = list(launcher or [])
    cmd = prefix + [program(), command] + options(out=out, **opts)
    full_env = dict(os.environ)
    for k, v in _lib.ENV_SET.items():  # set by this module, not the user: the program chooses
        if full_env.get(k) == v:
            del full_env[k]
    full_env.update(env or {})
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
        seconds = time.monotonic() - t0
        metrics = []
        if os.path.exists(mpath):
            with open(mpath) as f:
                f.seek(start)
                metrics = [json.loads(line) for line in f if line.strip()]
    finally:
        if tmpdir:
            for name in os.listdir(tmpdir):
                os.unlink(os.path.join(tmpdir, name))
            os.rmdir(tmpdir)
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error:" in ln]
        msg = (errors or lines or ["no error output"])[0]
        raise JobError("shardnet %s exited with status %d: %s (command: %s)" % (
            command, p.returncode, msg, shlex.join(cmd)), p.returncode, cmd, p.stderr)
    return JobResult(os.path.abspath(out) if out else None, metrics, cmd, p.returncode, p.stdout,
                     p.stderr, seconds)


def infer(data, out, arch, weights=None, ranks=1, threads=None, launcher=None, env=None,
          timeout=None, **opts):
    """`shardnet infer --arch ARCH --data DATA --out OUT [--weights W] [--threads T] ...` on
    `ranks` MPI ranks. Returns a JobResult whose out is the predictions file (complete: the
    program writes complete = 1 last) and whose metrics[0] holds rows, seconds, images_per_s,
    data_wait_s, compute_s, ranks, threads, batch."""
    return run("infer", ranks, launcher, env, timeout, out=out, arch=arch, data=data, weights=weights,
               threads=threads, **opts)


def train(data, arch, out=None, ranks=1, threads=None, launcher=None, env=None, timeout=None,
          **opts):
    """`shardnet train --arch ARCH --data DATA [--out OUT] ...` on `ranks` MPI ranks. Returns a
    JobResult whose out is the final weights file (with out=) and whose metrics has one dict
    per epoch (epoch, step, train_loss, train_acc, val_loss, val_acc, lr, seconds, images_per_s,
    ...; docs/cli.md)."""
    return run("train", ranks, launcher, env, timeout, out=out, arch=arch, data=data,
               threads=threads, **opts)
