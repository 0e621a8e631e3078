#!/usr/bin/env bash
# long_run.sh - a long inference soak (by hand, not a ctest): N small images (default 100,000 of
# 32x32x3 uint8, written by h5py chunked by 256 rows, with labels) through
# `mpirun -np 4 --oversubscribe shardnet infer` with a small model (resnet20 --width 4, random
# init), --logits --features (so that the output has several chunks and all 4 ranks get rows).
# While it runs, every rank's RSS is sampled every second (ps) and its open file descriptors are
# counted (/proc/PID/fd) at the first and the last sample. Afterwards the output must be complete
# and ordered: root attribute complete = 1, /done all 1, /index = 0..N-1, every dataset N rows.
#
# Pass/fail: the output checks, and per rank: RSS flat (it grows by at most SN_LONG_RSS_MB,
# default 2 MB, from the middle of the run to its end) and the same number of open descriptors at
# the last sample as at the first. Expected growth: each rank stages one output chunk of results
# (malloc'ed up front, its pages touched as rows are computed), so RSS rises during a rank's first
# chunk (16,384 rows x 144 B = 2.4 MB with resnet20 --width 4, top-5, logits, features) and stays
# flat afterwards.
#
# Usage: jobs/long_run.sh path/to/shardnet [N (default 100000)] [work dir]
# Env:   SN_LONG_ARCH (default "resnet20 --width 4"), SN_LONG_NP (default 4), SN_LONG_BATCH (64).
# Output: a summary (figures for docs/reliability.md) and WORKDIR/rss.csv (t, rss of each rank, KB).
set -u
sn="$(realpath "${1:?usage: $0 path/to/shardnet [N] [workdir]}")"
n="${2:-100000}"
w="${3:-$(mktemp -d /tmp/snlong.XXXXXX)}"
mkdir -p "$w"
cd "$w" || exit 1
np="${SN_LONG_NP:-4}"
batch="${SN_LONG_BATCH:-64}"
read -r -a arch <<<"${SN_LONG_ARCH:-resnet20 --width 4}"
py=/usr/bin/python3
tol_mb="${SN_LONG_RSS_MB:-2}"
export OMP_WAIT_POLICY=passive SN_PROGRESS=0
fail=0

if [[ ! -f data_$n.h5 ]]; then
  t0=$SECONDS
  "$py" - "$w/data_$n.h5" "$n" <<'PY' || { echo "could not write the dataset"; exit 1; }
import sys, h5py, numpy as np
path, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(2024)
with h5py.File(path + ".tmp", "w") as f:
    d = f.create_dataset("images", (n, 32, 32, 3), np.uint8, chunks=(256, 32, 32, 3))
    for b in range(0, n, 8192):
        e = min(n, b + 8192)
        d[b:e] = rng.integers(0, 256, (e - b, 32, 32, 3), dtype=np.uint8)
    f["labels"] = rng.integers(0, 10, n, dtype=np.int32)
import os; os.replace(path + ".tmp", path)
PY
  echo "wrote data_$n.h5 ($(du -h "data_$n.h5" | cut -f1)) in $((SECONDS - t0)) s"
fi

out="$w/out_$n.h5"
rm -f "$out" metrics.jsonl rss.csv
args=(infer --arch "${arch[@]}" --data "$w/data_$n.h5" --out "$out" --logits --features
  --batch "$batch" --threads 1 --quiet --metrics "$w/metrics.jsonl")
echo "mpirun -np $np --oversubscribe shardnet ${args[*]}"
t0=$(date +%s.%N)
[[ -n ${EPOCHREALTIME:-} ]] || { echo "needs bash >= 5 (EPOCHREALTIME)"; exit 1; }
mpirun --allow-run-as-root --oversubscribe -q -np "$np" "$sn" "${args[@]}" 2>"$w/stderr.txt" &
mp=$!

# The ranks: mpirun's children, ordered by OMPI_COMM_WORLD_RANK.
pids=()
for _ in $(seq 1 200); do
  pids=()
  for r in $(seq 0 $((np - 1))); do
    for p in $(pgrep -P "$mp"); do
      tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$r" && pids[r]=$p
    done
  done
  ((${#pids[@]} == np)) && break
  sleep 0.1
done
((${#pids[@]} == np)) || { echo "could not find the $np ranks"; wait "$mp"; exit 1; }
echo "ranks: ${pids[*]}"

fdcount() { local a=(/proc/"$1"/fd/*); [[ -e ${a[0]} ]] && echo "${#a[@]}" || echo 0; }
fdlist() { find "/proc/$1/fd" -mindepth 1 -printf '%l\n' 2>/dev/null | sed 's/\[[0-9]*\]$//' | sort | uniq -c; }
declare -a fd_first fd_last
first=1
plist=$(IFS=,; echo "${pids[*]}")
echo "t $(for r in $(seq 0 $((np - 1))); do printf 'rank%d ' "$r"; done)" >rss.csv
# One sample a second: elapsed time from bash's clock, all ranks' RSS from one ps call, the
# descriptor counts by globbing /proc/PID/fd (their targets are listed every 10 samples).
t0us=${EPOCHREALTIME/./}
k=0
while kill -0 "$mp" 2>/dev/null; do
  now_us=${EPOCHREALTIME/./}
  el=$(((now_us - t0us) / 100000))
  line="$((el / 10)).$((el % 10))"
  declare -A rssof=()
  while read -r p v; do rssof[$p]=$v; done < <(ps -o pid=,rss= -p "$plist" 2>/dev/null)
  alive=1
  for r in $(seq 0 $((np - 1))); do
    # an exiting rank (zombie) shows RSS 0
    [[ ${rssof[${pids[r]}]:-0} == 0 ]] && alive=0 && break
    line+=" ${rssof[${pids[r]}]}"
  done
  ((alive)) || break
  # descriptors: the first sample once the job runs (after 3 s: MPI, HDF5 and the reader are
  # up), and the last sample before the ranks exit
  if ((first && el >= 30)); then
    for r in $(seq 0 $((np - 1))); do
      fd_first[r]=$(fdcount "${pids[r]}")
      fdlist "${pids[r]}" >"fd_first_$r.txt"
    done
    first=0
  elif ((!first)); then
    for r in $(seq 0 $((np - 1))); do
      c=$(fdcount "${pids[r]}")
      ((c > 0)) && fd_last[r]=$c
      if ((k % 10 == 0 && c > 0)); then
        fdlist "${pids[r]}" >"fd_last_$r.txt.new" && mv "fd_last_$r.txt.new" "fd_last_$r.txt"
      fi
    done
  fi
  echo "$line" >>rss.csv
  k=$((k + 1))
  # sleep to the next whole second after the start
  now_us=${EPOCHREALTIME/./}
  nap=$((1000000 - (now_us - t0us) % 1000000))
  sleep "0.$(printf '%06d' $((nap % 1000000)))"
done
wait "$mp"
rc=$?
wall=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
echo "mpirun exit $rc after $wall s; stderr: $(head -3 stderr.txt)"
((rc == 0)) || fail=1
[[ -f metrics.jsonl ]] && echo "metrics: $(cat metrics.jsonl)"

# RSS figures per rank: growth over the second half of the run must stay within the tolerance;
# "last rise" is the last time RSS had grown by more than 256 KB since the previous rise.
"$py" - rss.csv "$tol_mb" <<'PY' || fail=1
import sys
rows = [l.split() for l in open(sys.argv[1])][1:]
tol = float(sys.argv[2])
t = [float(r[0]) for r in rows]
ranks = len(rows[0]) - 1
half = next(i for i, x in enumerate(t) if x >= t[-1] / 2)
bad = len(rows) < 10
print("samples: %d over %.0f s (one every %.2f s)" % (len(rows), t[-1], t[-1] / max(1, len(rows) - 1)))
print("rank  start_MB  at_half_MB  max_MB  end_MB  2nd_half_growth_MB  last_rise_s")
for r in range(ranks):
    v = [int(x[r + 1]) / 1024 for x in rows]
    mark, last_rise = v[0], 0.0
    for ti, x in zip(t, v):
        if x > mark + 0.25:
            last_rise, mark = ti, x
    g = v[-1] - v[half]
    flat = g <= tol
    bad |= not flat
    print("%4d  %8.1f  %10.1f  %6.1f  %6.1f  %+18.2f  %11.0f  %s" % (r, v[0], v[half], max(v), v[-1], g, last_rise,
          "flat" if flat else "GROWING"))
sys.exit(1 if bad else 0)
PY
for r in $(seq 0 $((np - 1))); do
  echo "rank $r: open descriptors ${fd_first[r]:-?} at the first sample, ${fd_last[r]:-?} at the last"
  if [[ ${fd_first[r]:-x} != "${fd_last[r]:-y}" ]]; then
    fail=1
    diff "fd_first_$r.txt" "fd_last_$r.txt" | sed 's/^/    /' | head -10 # (targets: last 10-s listing)
  fi
done

# the output: complete and ordered
"$py" - "$out" "$n" <<'PY' || fail=1
import sys, h5py, numpy as np
path, n = sys.argv[1], int(sys.argv[2])
with h5py.File(path, "r") as f:
    ok = True
    c = f.attrs.get("complete")
    print("complete =", c)
    ok &= c is not None and int(c) == 1
    idx = f["index"][...]
    ok &= idx.shape == (n,) and bool(np.array_equal(idx, np.arange(n)))
    print("/index == 0..N-1:", bool(np.array_equal(idx, np.arange(n))))
    done = f["done"][...]
    print("/done all 1:", bool((done == 1).all()), "(%d of %d)" % (int((done == 1).sum()), n))
    ok &= bool((done == 1).all())
    def walk(name, obj):
        global ok
        if isinstance(obj, h5py.Dataset):
            good = obj.shape[0] == n
            ok &= good
            print("  /%s %s %s%s" % (name, obj.shape, obj.dtype, "" if good else "  WRONG ROW COUNT"))
    f.visititems(walk)
    lg = f["logits"][...]
    fin = bool(np.isfinite(lg).all())
    print("logits finite:", fin)
    ok &= fin
sys.exit(0 if ok else 1)
PY
echo "long_run.sh: $([[ $fail == 0 ]] && echo PASS || echo FAIL) (workdir $w)"
exit $fail
