#!/usr/bin/python3
"""compare.py - shardnet vs PyTorch vs ONNX Runtime on the same shapes, in one run.

For every workload (mode, architecture, batch) each engine runs in its OWN process, so the peak
RSS reported is that process's maximum resident set (os.wait4 rusage of the child; shardnet's own
peak_rss_mb is kept in the raw JSON too). Engines are interleaved in ROUNDS: round r runs every
engine once per workload, the engine order rotated from round to round and workload to workload,
so that a slow drift of the machine's load hits everybody alike. Reported per workload and engine:
the median over rounds of the engine's own median images/s, [min-max] over rounds; the ratio
shardnet / engine of those medians, and the same ratio round by round (both engines measured in
the same round, so in about the same machine state) with the median of those; the effective GFLOP/s (shardnet's FLOPs per image for that model - 2 x MACs,
x3 for a training step, taken from shardnet's own line - times the engine's images/s) and its
fraction of the sgemm ceiling (cblas_sgemm 2048^3 with OpenBLAS, measured once at the start);
the peak RSS in MB (the largest over rounds).

Engines:
  shardnet      `shardnet bench` (OPENBLAS_CORETYPE=SkylakeX; OpenMP's wait policy as the caller's
                environment sets it, else shardnet's own default, docs/cli.md: recorded in
                each line as omp_wait_policy / gomp_spincount).
  pytorch       peers.py (inference) / train_peer.py (training); NCHW contiguous and
                channels_last each in its own process every round, the faster counts.
  onnxruntime   ort_run.js (node, onnxruntime-node) on the module exported by peers.py
                (inference only).
A peer that is not installed is skipped with a notice; the rest still runs.

Fashion-MNIST time to accuracy (--fmnist EPOCHS): `shardnet train` with the jobs/demo.sh recipe
vs fmnist_peer.py (PyTorch, same resnet20 and recipe), the same epochs, printing the wall time
to --target test accuracy for each and the ratio. shardnet's wall time is taken from this
script's clock when each --metrics line appears (its "seconds" field is the epoch's training
time only, without evaluation), counted from the process start (includes start-up and the
first read of the data, as fmnist_peer.py's includes its HDF5 load). A second line compares the
engines' training epochs alone (the sum of each epoch's training time, without start-up and
evaluation).

Usage: compare.py [--workloads LIST|default|quick|none] [--engines shardnet,pytorch,onnxruntime]
                  [--rounds 3] [--reps 10] [--min-time 5] [--threads 2] [--quick]
                  [--shardnet build/shardnet] [--json-out FILE] [--md-out FILE]
                  [--workdir /tmp/shardnet_compare] [--peer-passive] [--timeout 1200]
                  [--fmnist EPOCHS [--fmnist-ranks 1|2] [--target 0.92] [--limit-rows N]
                   [--fmnist-dir DIR]]
  LIST = comma-separated MODE:ARCH:bBATCH, e.g. infer:resnet50:b8,train:resnet20:b128; MODE infer,
  infer-bf16, infer-int8 (shardnet --precision; PyTorch's int8 is peers.py --precision int8) or train
  (resnet20 runs at 28x28x1 with 10 classes, everything else at 224x224x3, 1000 classes).
  --quick: --min-time 1 --reps 2 --rounds 1 and the quick workload list (smoke test).
  --peer-passive: OMP_WAIT_POLICY=passive for PyTorch and no ORT spinning (loaded machines).
Run with /usr/bin/python3 (torch 1.13 for the PyTorch rows and for the ONNX export).
"""
import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
PY = sys.executable or '/usr/bin/python3'

DEFAULT_WORKLOADS = ('infer:resnet50:b1,infer:resnet50:b8,infer:resnet50:b32,infer:resnet18:b8,'
                     'infer:keras_resnet50v2:b8,infer:resnet50:b16,train:resnet50:b16,'
                     'train:resnet20:b128')
QUICK_WORKLOADS = 'infer:resnet18:b1,train:resnet20:b32'
ENGINE_NAMES = {'shardnet': 'shardnet', 'pytorch': 'PyTorch', 'onnxruntime': 'ONNX Runtime'}

SGEMM_C = r'''
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2048, reps = argc > 2 ? atoi(argv[2]) : 10;
  float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
  if (!a || !b || !c) return 1;
  for (size_t i = 0; i < (size_t)n * n; ++i) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.1f; c[i] = 0; }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  double best = 0, sum = 0;
  for (int r = 0; r < reps; ++r) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double g = 2.0 * n * n * (double)n / (now() - t0) / 1e9;
    if (g > best) best = g;
    sum += g;
  }
  printf("{\"sgemm_n\": %d, \"reps\": %d, \"gflops_best\": %.1f, \"gflops_mean\": %.1f, \"check\": %g}\n",
         n, reps, best, sum / reps, (double)c[(size_t)n * n / 2]);
  return 0;
}
'''


def log(msg):
    print(msg, flush=True)


def notice(msg):
    print('NOTICE: ' + msg, flush=True)


def loadavg():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


def cpu_model():
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return 'unknown'


def git_commit():
    try:
        rev = subprocess.run(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(['git', '-C', ROOT, 'status', '--porcelain', '--untracked-files=no'],
                               capture_output=True, text=True).stdout.strip()
        return rev + (' (working tree modified)' if dirty else '')
    except OSError:
        return 'unknown'


def run_proc(cmd, env, timeout, cwd=None):
    """Runs cmd in its own process group; returns (rc, stdout, stderr, maxrss_mb, wall_s).
    The peak RSS is the child's own (wait4), not a sum over earlier children."""
    with tempfile.TemporaryFile('w+') as fo, tempfile.TemporaryFile('w+') as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, cwd=cwd, start_new_session=True)
        rc, ru = None, None
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() - t0 > timeout:
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, ru = os.wait4(p.pid, 0)
                rc = -9
                break
            time.sleep(0.05)
        p.returncode = rc  # reaped here: keep Popen from waiting again
        wall = time.perf_counter() - t0
        fo.seek(0)
        fe.seek(0)
        return rc, fo.read(), fe.read(), ru.ru_maxrss / 1024.0, wall


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith('{'):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def sgemm_ceiling(args):
    exe = os.path.join(args.workdir, 'sgemm_ceiling')
    src = exe + '.c'
    with open(src, 'w') as f:
        f.write(SGEMM_C)
    cc = shutil.which('cc') or shutil.which('gcc')
    if not cc:
        notice('no C compiler: sgemm ceiling not measured, no fractions printed')
        return None
    r = subprocess.run([cc, '-O2', '-I/usr/include/x86_64-linux-gnu', src, '-o', exe, '-lopenblas'],
                       capture_output=True, text=True)
    if r.returncode:
        notice('sgemm ceiling program did not compile (%s): no fractions printed' % r.stderr.strip()[:200])
        return None
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads),
               OPENBLAS_CORETYPE=os.environ.get('OPENBLAS_CORETYPE', 'SkylakeX'),
               OMP_NUM_THREADS=str(args.threads))
    rc, out, err, _, _ = run_proc([exe, '2048', str(3 if args.quick else 15)], env, 600)
    rec = last_json(out)
    if rc or not rec:
        notice('sgemm ceiling run failed: ' + err.strip()[:200])
        return None
    rec.update(kind='sgemm_ceiling', threads=args.threads, openblas_coretype=env['OPENBLAS_CORETYPE'])
    return rec


def parse_workloads(spec):
    if spec == 'default':
        spec = DEFAULT_WORKLOADS
    elif spec == 'quick':
        spec = QUICK_WORKLOADS
    elif spec == 'none':
        return []
    out = []
    for item in spec.split(','):
        parts = item.strip().split(':')
        modes = ('infer', 'infer-bf16', 'infer-int8', 'train')
        if len(parts) != 3 or parts[0] not in modes:
            raise SystemExit('compare.py: workload %r is not MODE:ARCH:bBATCH (MODE %s)'
                             % (item, '|'.join(modes)))
        mode, _, prec = parts[0].partition('-')
        out.append({'id': item.strip(), 'mode': mode, 'precision': prec or 'fp32', 'arch': parts[1],
                    'batch': int(parts[2].lstrip('b'))})
    return out


def small_input(arch):
    return arch.startswith('resnet') and arch[6:].isdigit() and int(arch[6:]) in (20, 32, 44, 56, 110)


class Engines:
    """Availability checks and the command line of every engine x workload (x format)."""

    def __init__(self, args):
        self.args = args
        self.available = {}
        self.versions = {}
        wanted = args.engines.split(',')
        for e in wanted:
            if e not in ENGINE_NAMES:
                raise SystemExit('compare.py: unknown engine %r (shardnet, pytorch, onnxruntime)' % e)
        if 'shardnet' in wanted:
            ok = os.access(args.shardnet, os.X_OK)
            if not ok:
                notice('shardnet not found at %s (build it: cmake --build BUILD --target shardnet_cli); '
                       'skipped' % args.shardnet)
            else:
                self.versions['shardnet'] = subprocess.run([args.shardnet, '--version'], capture_output=True,
                                                           text=True).stdout.strip()
            self.available['shardnet'] = ok
        torch_ok = subprocess.run([PY, '-c', 'import torch, torchvision; print(torch.__version__)'],
                                  capture_output=True, text=True)
        self.torch = torch_ok.returncode == 0
        if self.torch:
            self.versions['pytorch'] = torch_ok.stdout.strip()
        if 'pytorch' in wanted:
            if not self.torch:
                notice('PyTorch (torch + torchvision for %s) not installed: PyTorch rows skipped' % PY)
            self.available['pytorch'] = self.torch
        if 'onnxruntime' in wanted:
            node = shutil.which('node')
            mod = os.path.isdir(os.path.join(HERE, 'node_modules', 'onnxruntime-node'))
            ok = bool(node and mod)
            if not node:
                notice('node not installed: ONNX Runtime rows skipped')
            elif not mod:
                notice('onnxruntime-node not installed (cd %s && ONNXRUNTIME_NODE_INSTALL=skip npm install): '
                       'ONNX Runtime rows skipped' % HERE)
            if ok:
                v = subprocess.run([node, '-e', 'console.log(require("onnxruntime-node").env.versions.common)'],
                                   cwd=HERE, capture_output=True, text=True)
                self.versions['onnxruntime'] = v.stdout.strip() or '?'
            self.available['onnxruntime'] = ok
        self.onnx = {}

    def engines_for(self, w):
        es = [e for e in ('shardnet', 'onnxruntime', 'pytorch') if self.available.get(e)]
        if w['mode'] == 'train' or small_input(w['arch']) or w['precision'] != 'fp32':
            es = [e for e in es if e != 'onnxruntime']  # ort_run.js feeds 224x224x3 fp32 inference only
        if w['precision'] == 'bf16' or (w['precision'] == 'int8' and small_input(w['arch'])):
            es = [e for e in es if e != 'pytorch']  # peers.py: int8 on the 224x224 models only
        return es

    def prepare_onnx(self, workloads):
        """Exports the ONNX files once (not timed) with peers.py's exporter."""
        if not self.available.get('onnxruntime'):
            return
        for arch in sorted({w['arch'] for w in workloads if 'onnxruntime' in self.engines_for(w)}):
            path = os.path.join(self.args.workdir, arch + '.onnx')
            if not os.path.exists(path):
                if not self.torch:
                    notice('no torch to export %s: ONNX Runtime skipped for it' % path)
                    continue
                code = ('import sys; sys.path.insert(0, %r); import peers; peers.export_onnx(%r, %r)'
                        % (HERE, arch, self.args.workdir))
                r = subprocess.run([PY, '-c', code], capture_output=True, text=True,
                                   env=dict(os.environ, OMP_NUM_THREADS=str(self.args.threads)))
                if r.returncode or not os.path.exists(path):
                    notice('ONNX export of %s failed: %s' % (arch, r.stderr.strip()[-300:]))
                    continue
            self.onnx[arch] = path

    def env(self, engine):
        a = self.args
        e = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
        if engine == 'shardnet':
            e.update(OPENBLAS_NUM_THREADS=str(a.threads),
                     OPENBLAS_CORETYPE=os.environ.get('OPENBLAS_CORETYPE', 'SkylakeX'))
        elif a.peer_passive:
            e['OMP_WAIT_POLICY'] = 'passive'
        else:
            e.pop('OMP_WAIT_POLICY', None)
        return e

    def commands(self, engine, w):
        """[(variant, argv)]: the processes making one engine's measurement of a workload."""
        a = self.args
        common = ['--reps', str(a.reps), '--min-time', str(a.min_time)]
        if engine == 'shardnet':
            cmd = [a.shardnet, 'bench', '--arch', w['arch'], '--batch', str(w['batch']),
                   '--threads', str(a.threads)] + common
            if w['mode'] == 'train':
                cmd.append('--train')
            if w['precision'] != 'fp32':
                cmd += ['--precision', w['precision']]
            if small_input(w['arch']):
                cmd += ['--input', '28x28x1', '--classes', '10']
            return [('', cmd)]
        if engine == 'onnxruntime':
            if w['arch'] not in self.onnx:
                return []
            return [('', ['node', os.path.join(HERE, 'ort_run.js'), '--model', self.onnx[w['arch']],
                          '--batch', str(w['batch']), '--threads', str(a.threads)] + common +
                     ['--spin', '0' if a.peer_passive else '1'])]
        out = []
        for fmt in ('contiguous', 'channels_last'):
            if w['mode'] == 'infer':
                cmd = [PY, os.path.join(HERE, 'peers.py'), '--models', w['arch'], '--batches',
                       str(w['batch']), '--frameworks', 'torch', '--formats', fmt,
                       '--threads', str(a.threads), '--precision', w['precision']] + common
            else:
                cmd = [PY, os.path.join(HERE, 'train_peer.py'), '--models', w['arch'], '--batch',
                       '%s=%d' % (w['arch'], w['batch']), '--formats', fmt,
                       '--threads', str(a.threads)] + common
            out.append((fmt, cmd))
        return out


def measure(eng, engine, w, rnd, raw):
    """One engine's measurement of workload w in round rnd: the best variant's record or None."""
    best = None
    variants = eng.commands(engine, w)
    if rnd % 2 and len(variants) > 1:
        variants = variants[::-1]
    for variant, cmd in variants:
        la0 = loadavg()
        rc, out, err, rss, wall = run_proc(cmd, eng.env(engine), eng.args.timeout, cwd=HERE)
        rec = last_json(out)
        if rc != 0 or not rec or 'img_per_s' not in rec:
            notice('%s %s%s failed (exit %s): %s' % (ENGINE_NAMES[engine], w['id'],
                                                     ' ' + variant if variant else '', rc,
                                                     (err.strip() or out.strip())[-300:]))
            raw.append({'kind': 'failure', 'engine': engine, 'workload': w['id'], 'round': rnd,
                        'variant': variant, 'exit': rc, 'cmd': ' '.join(map(shlex.quote, cmd))})
            continue
        rec = dict(rec, kind='run', engine=engine, workload=w['id'], round=rnd, variant=variant,
                   process_peak_rss_mb=round(rss, 1), process_wall_s=round(wall, 2),
                   load_avg_before=la0, load_avg_after=loadavg(), model=w['arch'],
                   cmd=' '.join(map(shlex.quote, cmd)))
        raw.append(rec)
        if eng.args.verbose:
            log('  %-28s r%d %-12s %-14s %8.2f img/s  %7.0f MB  %5.1f s' % (
                w['id'], rnd, engine, variant, rec['img_per_s'], rss, wall))
        if best is None or rec['img_per_s'] > best['img_per_s']:
            best = rec
    return best


def fmt_num(v, nd=None):
    if v is None:
        return 'n/a'
    if nd is None:
        nd = 2 if abs(v) < 10 else 1
    return ('%.' + str(nd) + 'f') % v


def throughput(args, eng, workloads, ceiling, raw):
    results = {}  # (workload id, engine) -> [best record per round]
    t0 = time.perf_counter()
    for rnd in range(args.rounds):
        log('-- round %d/%d (load %s)' % (rnd + 1, args.rounds, loadavg()))
        for wi, w in enumerate(workloads):
            es = eng.engines_for(w)
            if not es:
                continue
            k = (rnd + wi) % len(es)
            for e in es[k:] + es[:k]:
                rec = measure(eng, e, w, rnd, raw)
                if rec:
                    results.setdefault((w['id'], e), []).append(rec)
    log('-- throughput rounds took %.0f s' % (time.perf_counter() - t0))

    rows, summary = [], []
    for w in workloads:
        sn = results.get((w['id'], 'shardnet'), [])
        flop_img = None  # GFLOP per image, from shardnet's own lines
        if sn:
            flop_img = statistics.median(r['gflops'] * r['ms_per_batch'] / 1e3 / r['batch'] for r in sn)
        sn_med = statistics.median(r['img_per_s'] for r in sn) if sn else None
        for e in ('shardnet', 'onnxruntime', 'pytorch'):
            recs = results.get((w['id'], e))
            if not recs:
                if e in eng.engines_for(w):
                    rows.append([w['id'], ENGINE_NAMES[e], 'failed', '', '', '', '', ''])
                continue
            ips = [r['img_per_s'] for r in recs]
            med = statistics.median(ips)
            rss = max(r['process_peak_rss_mb'] for r in recs)
            eff = flop_img * med if flop_img else None
            frac = eff / ceiling if (eff and ceiling) else None
            ratio = sn_med / med if (sn_med and e != 'shardnet') else None
            # the same machine state: shardnet's and this engine's measurement of one round
            sn_by_round = {r['round']: r['img_per_s'] for r in sn}
            per_round = [round(sn_by_round[r['round']] / r['img_per_s'], 3) for r in recs
                         if e != 'shardnet' and r['round'] in sn_by_round]
            name = ENGINE_NAMES[e]
            if e == 'pytorch':
                fmts = [r.get('variant') for r in recs]
                name += ' (%s)' % '/'.join(sorted(set(fmts), key=fmts.index))
            rows.append([w['id'], name, '%s [%s-%s]' % (fmt_num(med), fmt_num(min(ips)), fmt_num(max(ips))),
                         ('%.2f' % ratio) if ratio else ('-' if e == 'shardnet' else 'n/a'),
                         ('%s (median %.2f)' % (', '.join('%.2f' % x for x in per_round),
                                                statistics.median(per_round))) if per_round else '-',
                         fmt_num(eff), ('%.0f%%' % (100 * frac)) if frac is not None else 'n/a',
                         '%.0f' % rss])
            summary.append({'kind': 'summary', 'workload': w['id'], 'engine': e, 'img_per_s_median': med,
                            'img_per_s_min': min(ips), 'img_per_s_max': max(ips), 'rounds': len(recs),
                            'shardnet_over_engine': ratio, 'per_round_ratios': per_round,
                            'gflop_per_img': flop_img,
                            'effective_gflops': eff, 'fraction_of_sgemm': frac, 'peak_rss_mb': rss})
    return rows, summary


def md_table(rows, ceiling):
    head = ['workload', 'engine', 'img/s median [min-max]', 'shardnet / engine',
            'per round: shardnet / engine', 'effective GFLOP/s',
            'of sgemm %s' % ('%.0f GFLOP/s' % ceiling if ceiling else 'ceiling'), 'peak RSS MB']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '|'.join('---' for _ in head) + '|']
    for r in rows:
        lines.append('| ' + ' | '.join(r) + ' |')
    return '\n'.join(lines)


# ------------------------------------------------------------------ Fashion-MNIST time to accuracy

def fmnist_data(args):
    d = args.fmnist_dir
    os.makedirs(d, exist_ok=True)
    fm = '/usr/share/datasets/fashion-mnist'
    files = {}
    for split, pre in (('train', 'train'), ('test', 't10k')):
        out = os.path.join(d, 'fashion_%s.h5' % split)
        if not os.path.exists(out):
            r = subprocess.run([args.shardnet, 'convert', 'idx', '--images', '%s/%s-images-idx3-ubyte.gz' % (fm, pre),
                                '--labels', '%s/%s-labels-idx1-ubyte.gz' % (fm, pre), '--out', out,
                                '--fashion', '--force', '--quiet'], capture_output=True, text=True)
            if r.returncode:
                raise SystemExit('compare.py: shardnet convert idx failed: ' + r.stderr.strip())
        files[split] = out
    if args.limit_rows:
        import h5py
        sub = os.path.join(d, 'fashion_train_%d.h5' % args.limit_rows)
        if not os.path.exists(sub):
            with h5py.File(files['train'], 'r') as src, h5py.File(sub + '.tmp', 'w') as dst:
                for name in ('images', 'labels'):
                    dst.create_dataset(name, data=src[name][:args.limit_rows])
                for k, v in src.attrs.items():
                    dst.attrs[k] = v
            os.replace(sub + '.tmp', sub)
        files['train'] = sub
    return files


def time_to(points, target):
    """points: [(cumulative wall s, val_acc)] -> first wall time with val_acc >= target."""
    for t, acc in points:
        if acc >= target:
            return t
    return None


def run_shardnet_train(args, files):
    ranks = args.fmnist_ranks
    threads = max(1, args.threads // ranks)
    metrics = os.path.join(args.fmnist_dir, 'sn_metrics.jsonl')
    if os.path.exists(metrics):
        os.remove(metrics)
    cmd = [args.shardnet, 'train', '--arch', 'resnet20', '--input', '28x28x1', '--data', files['train'],
           '--val', files['test'], '--epochs', str(args.fmnist), '--batch', '128', '--lr', '0.1',
           '--momentum', '0.9', '--nesterov', '--weight-decay', '5e-4', '--schedule', 'cosine',
           '--augment', 'flip', '--bn', 'sync', '--threads', str(threads), '--metrics', metrics, '--quiet']
    if ranks > 1:
        cmd = ['mpirun', '--oversubscribe', '-q', '-np', str(ranks)] + cmd
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT='1',
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM='1', HDF5_USE_FILE_LOCKING='FALSE',
               OPENBLAS_CORETYPE=os.environ.get('OPENBLAS_CORETYPE', 'SkylakeX'),
               OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    log('   $ ' + ' '.join(map(shlex.quote, cmd)))
    t0 = time.perf_counter()
    errf = tempfile.TemporaryFile('w+')
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, env=env, start_new_session=True)
    seen, lines = 0, []
    while True:
        done = p.poll() is not None
        if os.path.exists(metrics):
            with open(metrics) as f:
                got = [l for l in f.read().splitlines() if l.strip()]
            for l in got[seen:]:
                rec = json.loads(l)
                rec['wall_s'] = round(time.perf_counter() - t0, 2)  # this script's clock
                lines.append(rec)
                log('   shardnet ' + json.dumps({k: rec[k] for k in ('epoch', 'wall_s', 'seconds', 'train_loss',
                                                                     'val_acc', 'images_per_s') if k in rec}))
            seen = len(got)
        if done:
            break
        if time.perf_counter() - t0 > args.timeout * max(1, args.fmnist):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            notice('shardnet train timed out')
            break
        time.sleep(0.1)
    total = time.perf_counter() - t0
    if p.returncode:
        errf.seek(0)
        notice('shardnet train failed (exit %s): %s' % (p.returncode, errf.read().strip()[-300:]))
    errf.close()
    return lines, total, cmd


def run_torch_train(args, files):
    cmd = [PY, os.path.join(HERE, 'fmnist_peer.py'), '--train', files['train'], '--test', files['test'],
           '--epochs', str(args.fmnist), '--threads', str(args.threads), '--target', str(args.target)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env.pop('OMP_WAIT_POLICY', None)
    if args.peer_passive:
        env['OMP_WAIT_POLICY'] = 'passive'
    log('   $ ' + ' '.join(map(shlex.quote, cmd)))
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for l in p.stdout:
        l = l.strip()
        if l.startswith('{') and '"epoch"' in l:
            rec = json.loads(l)
            rec['peer_wall_s'] = rec['wall_s']  # its own: training + evaluation only
            rec['wall_s'] = round(time.perf_counter() - t0, 2)  # this script's clock, as for shardnet
            lines.append(rec)
            log('   pytorch  ' + l)
    err = p.stderr.read()
    p.wait()
    total = time.perf_counter() - t0
    if p.returncode:
        notice('fmnist_peer.py failed (exit %s): %s' % (p.returncode, err.strip()[-300:]))
    return lines, total, cmd


def fmnist_compare(args, eng, raw):
    log('')
    log('== Fashion-MNIST resnet20, %d epochs, time to %.2f test accuracy' % (args.fmnist, args.target))
    if not eng.available.get('shardnet', os.access(args.shardnet, os.X_OK)):
        notice('shardnet missing: no Fashion-MNIST comparison')
        return None
    files = fmnist_data(args)
    log('   data: %s, %s' % (files['train'], files['test']))
    res = {}
    order = ['shardnet', 'pytorch'] if eng.available.get('pytorch') else ['shardnet']
    if len(order) == 1:
        notice('PyTorch not installed or not in --engines: Fashion-MNIST peer skipped')
    for e in order:
        lines, total, cmd = (run_shardnet_train if e == 'shardnet' else run_torch_train)(args, files)
        pts = [(r['wall_s'], r['val_acc']) for r in lines]
        train_s = sum(r.get('seconds' if e == 'shardnet' else 'train_s', 0) for r in lines) \
            if lines else None
        res[e] = {'time_to_acc': time_to(pts, args.target), 'total_s': total,
                  'final_val_acc': lines[-1]['val_acc'] if lines else None,
                  'epochs': len(lines), 'train_only_s': train_s}
        for r in lines:
            raw.append(dict(r, kind='fmnist_epoch', engine=e))
        raw.append(dict(res[e], kind='fmnist_result', engine=e, cmd=' '.join(map(shlex.quote, cmd)),
                        target=args.target))
    rows = ['| engine | epochs | final test acc | wall s to %.2f | total wall s |' % args.target,
            '|---|---|---|---|---|']
    for e, r in res.items():
        name = 'shardnet (%d rank x %d threads)' % (args.fmnist_ranks, max(1, args.threads // args.fmnist_ranks)) \
            if e == 'shardnet' else 'PyTorch %s (%d threads)' % (eng.versions.get('pytorch', ''), args.threads)
        rows.append('| %s | %d | %s | %s | %.1f |' % (name, r['epochs'], fmt_num(r['final_val_acc'], 4),
                                                    fmt_num(r['time_to_acc']), r['total_s']))
    s, t = res.get('shardnet', {}).get('time_to_acc'), res.get('pytorch', {}).get('time_to_acc')
    ratio = ('time to %.2f: PyTorch / shardnet = %.2f (shardnet / PyTorch = %.3f)'
             % (args.target, t / s, s / t)) if (s and t) else \
        'time-to-accuracy ratio: n/a (an engine did not reach %.2f)' % args.target
    # the training epochs alone (no start-up, no evaluation): the engines' step speed over the run
    st, tt = res.get('shardnet', {}).get('train_only_s'), res.get('pytorch', {}).get('train_only_s')
    if st and tt:
        ratio += '\ntraining epochs only, %d each: shardnet %.1f s, PyTorch %.1f s (shardnet / PyTorch = %.3f)' \
            % (res['shardnet']['epochs'], st, tt, st / tt)
    return '\n'.join(rows) + '\n\n' + ratio


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument('--workloads', default=None, help='MODE:ARCH:bBATCH list, default, quick or none')
    ap.add_argument('--engines', default='shardnet,pytorch,onnxruntime')
    ap.add_argument('--rounds', type=int, default=None)
    ap.add_argument('--reps', type=int, default=None)
    ap.add_argument('--min-time', type=float, default=None)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--shardnet', default=os.path.join(ROOT, 'build', 'shardnet'))
    ap.add_argument('--json-out', default=None)
    ap.add_argument('--md-out', default=None)
    ap.add_argument('--workdir', default='/tmp/shardnet_compare')
    ap.add_argument('--peer-passive', action='store_true')
    ap.add_argument('--timeout', type=float, default=1200, help='seconds per process (per epoch for --fmnist)')
    ap.add_argument('--verbose', action='store_true', help='print every run as it finishes')
    ap.add_argument('--no-sgemm', action='store_true', help='skip the sgemm ceiling')
    ap.add_argument('--fmnist', type=int, default=0, metavar='EPOCHS')
    ap.add_argument('--fmnist-ranks', type=int, default=1, choices=(1, 2))
    ap.add_argument('--fmnist-dir', default=None)
    ap.add_argument('--target', type=float, default=0.92)
    ap.add_argument('--limit-rows', type=int, default=0, help='Fashion-MNIST: train on the first N rows')
    args = ap.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.reps = args.reps or (2 if args.quick else 10)
    args.min_time = args.min_time if args.min_time is not None else (1.0 if args.quick else 5.0)
    args.workloads = args.workloads or ('quick' if args.quick else 'default')
    args.fmnist_dir = args.fmnist_dir or os.path.join(args.workdir, 'fmnist')
    args.shardnet = os.path.abspath(args.shardnet)
    os.makedirs(args.workdir, exist_ok=True)
    workloads = parse_workloads(args.workloads)

    raw = []
    la_start = loadavg()
    header = {'kind': 'header', 'date': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
              'cpu': cpu_model(), 'nproc': os.cpu_count(), 'load_avg_start': la_start, 'git': git_commit(),
              'command': ' '.join(map(shlex.quote, [sys.argv[0]] + sys.argv[1:])), 'threads': args.threads,
              'rounds': args.rounds, 'reps': args.reps, 'min_time': args.min_time,
              'shardnet_env': 'OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s OPENBLAS_CORETYPE=%s' % (
                  os.environ.get('OMP_WAIT_POLICY', '(shardnet default)'),
                  os.environ.get('GOMP_SPINCOUNT', '(shardnet default)'),
                  os.environ.get('OPENBLAS_CORETYPE', 'SkylakeX')),
              'peer_env': 'OMP_WAIT_POLICY=passive, ORT spin 0' if args.peer_passive else
                          'OMP_WAIT_POLICY unset, ORT spin 1 (their defaults)'}
    for k in ('date', 'cpu', 'nproc', 'load_avg_start', 'git', 'command', 'threads', 'shardnet_env', 'peer_env'):
        log('%-15s %s' % (k.replace('_', ' '), header[k]))
    log('%-15s rounds %d, reps >= %d, min-time %g s per process' % ('timing', args.rounds, args.reps,
                                                                     args.min_time))
    eng = Engines(args)
    header['versions'] = eng.versions
    log('%-15s %s' % ('versions', ', '.join('%s %s' % (ENGINE_NAMES[k], v) for k, v in eng.versions.items())))
    raw.append(header)

    ceiling = None
    if workloads and not args.no_sgemm:
        rec = sgemm_ceiling(args)
        if rec:
            raw.append(rec)
            ceiling = rec['gflops_best']
            log('%-15s %.1f GFLOP/s best (mean %.1f), cblas_sgemm %d^3 x %d, OpenBLAS %d threads, '
                'OPENBLAS_CORETYPE=%s' % ('sgemm ceiling', ceiling, rec['gflops_mean'], rec['sgemm_n'],
                                          rec['reps'], args.threads, rec['openblas_coretype']))

    table = None
    if workloads:
        eng.prepare_onnx(workloads)
        rows, summary = throughput(args, eng, workloads, ceiling, raw)
        raw.extend(summary)
        table = md_table(rows, ceiling)
    fm = fmnist_compare(args, eng, raw) if args.fmnist else None

    la_end = loadavg()
    raw.append({'kind': 'footer', 'load_avg_end': la_end})
    out = ['', '## shardnet vs peers (%s)' % header['date'], '',
           '- CPU: %s, %d logical cores; %d threads per engine' % (header['cpu'], header['nproc'], args.threads),
           '- git %s; load average at start %s, at end %s' % (header['git'], la_start, la_end),
           '- command: `%s`' % header['command'],
           '- versions: %s' % ', '.join('%s %s' % (ENGINE_NAMES[k], v) for k, v in eng.versions.items()),
           '- shardnet: %s; peers: %s' % (header['shardnet_env'], header['peer_env'])]
    if workloads:
        out[-1:-1] = [
            '- %d round(s), each engine x workload in its own process; img/s = median over rounds of each '
            'process\'s median (%d runs or more, until %g s have passed, at most %d), [min-max] over '
            'rounds' % (args.rounds, args.reps, args.min_time, 3 * args.reps),
            '- effective GFLOP/s = shardnet\'s FLOPs per image (2 x MACs, x3 for training) x img/s; '
            'sgemm ceiling %s' % ('%.1f GFLOP/s (cblas_sgemm 2048^3, OpenBLAS)' % ceiling if ceiling else 'n/a')]
    if table:
        out += ['', table]
    if fm:
        out += ['', '### Fashion-MNIST resnet20 time to %.2f test accuracy' % args.target, '', fm]
    text = '\n'.join(out) + '\n'
    print(text, flush=True)
    if args.md_out:
        with open(args.md_out, 'w') as f:
            f.write(text)
    if args.json_out:
        with open(args.json_out, 'w') as f:
            for r in raw:
                f.write(json.dumps(r) + '\n')
        log('raw JSON lines: ' + args.json_out)


if __name__ == '__main__':
    main()
