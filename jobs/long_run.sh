#!/usr/bin/env bash
# long_run.sh - a long inference soak (by hand, not a ctest): N small images (default 100,000 of
# 32x32x3 uint8, written by h5py chunked by 256 rows, with labels) through
# `mpirun -np 4 --oversubscribe shardnet infer` with a small model (resnet20 --width 4, random
# init), --logits --features (so that the output has several chunks and all 4 ranks get rows).
# While it runs, every rank's RSS is sampled every second (ps) and its open file descriptors are
# counted (/proc/PID/fd) at the first and the last sample. Afterwards the output must be complete
# and ordered: root attribute complete = 1, /done all 1, /index = 0..N-1, every dataset N rows.
#
# Pass/fail: the output checks, and per rank: RSS flat (mean of the last quarter of the samples
# within SN_LONG_RSS_MB (default 4) MB of the mean of the second quarter) and the same number of
# open descriptors at the last sample as at the first.
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
tol_mb="${SN_LONG_RSS_MB:-4}"
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

fdcount() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
fdlist() { for f in /proc/"$1"/fd/*; do readlink "$f"; done 2>/dev/null | sed 's/\[[0-9]*\]$//' | sort | uniq -c; }
declare -a fd_first fd_last
first=1
echo "t $(for r in $(seq 0 $((np - 1))); do printf 'rank%d ' "$r"; done)" >rss.csv
while kill -0 "$mp" 2>/dev/null; do
  line="$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')"
  alive=1
  for r in $(seq 0 $((np - 1))); do
    rss=$(ps -o rss= -p "${pids[r]}" 2>/dev/null | tr -d ' ')
    [[ -z $rss ]] && alive=0 && break
    line+=" $rss"
  done
  ((alive)) || break
  # descriptors: the first sample once the job runs (after 3 s: MPI, HDF5 and the reader are up),
  # and the last sample before the ranks exit
  if ((first)) && awk -v l="${line%% *}" 'BEGIN { exit !(l >= 3) }'; then
    for r in $(seq 0 $((np - 1))); do
      fd_first[r]=$(fdcount "${pids[r]}")
      fdlist "${pids[r]}" >"fd_first_$r.txt"
    done
    first=0
  fi
  if ((!first)); then
    for r in $(seq 0 $((np - 1))); do
      c=$(fdcount "${pids[r]}")
      if ((c > 0)); then
        fd_last[r]=$c
        fdlist "${pids[r]}" >"fd_last_$r.txt.new" && mv "fd_last_$r.txt.new" "fd_last_$r.txt"
      fi
    done
  fi
  echo "$line" >>rss.csv
  sleep 1
done
wait "$mp"
rc=$?
wall=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
echo "mpirun exit $rc after $wall s; stderr: $(head -3 stderr.txt)"
((rc == 0)) || fail=1
[[ -f metrics.jsonl ]] && echo "metrics: $(cat metrics.jsonl)"

# RSS figures per rank
"$py" - rss.csv "$tol_mb" <<'PY' || fail=1
import sys
rows = [l.split() for l in open(sys.argv[1])][1:]
tol = float(sys.argv[2])
t = [float(r[0]) for r in rows]
ranks = len(rows[0]) - 1
q = len(rows) // 4
bad = 0
print("samples: %d over %.0f s" % (len(rows), t[-1] if t else 0))
print("rank  first_MB  max_MB  q2_mean_MB  q4_mean_MB  drift_MB  last_MB")
for r in range(ranks):
    v = [int(x[r + 1]) / 1024 for x in rows]
    q2 = sum(v[q:2 * q]) / max(1, q)
    q4 = sum(v[3 * q:]) / max(1, len(v) - 3 * q)
    flat = abs(q4 - q2) <= tol
    bad |= not flat
    print("%4d  %8.1f  %6.1f  %10.1f  %10.1f  %+8.2f  %7.1f  %s" % (r, v[0], max(v), q2, q4, q4 - q2, v[-1], "flat" if flat else "NOT FLAT"))
sys.exit(1 if bad or q < 2 else 0)
PY
for r in $(seq 0 $((np - 1))); do
  echo "rank $r: open descriptors ${fd_first[r]:-?} at the first sample, ${fd_last[r]:-?} at the last"
  if [[ ${fd_first[r]:-x} != "${fd_last[r]:-y}" ]]; then
    fail=1
    diff "fd_first_$r.txt" "fd_last_$r.txt" | sed 's/^/    /' | head -10
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
